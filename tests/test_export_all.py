"""``mobexport export NAME --to ...|all [--bench]`` and ``mobexport.export_all``: every target in one go, one row
per target, failures recorded as rows, exit code = the worst per-target code. Real converters and runtimes."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TINY = f"{ROOT / 'tests' / 'fixtures' / 'custom_model.py'}:build"
COLUMNS = ["target", "status", "size MB", "fidelity", "export s", "min ms", "p50 ms", "runtime", "artifact"]
STEP_LINE = re.compile(r"^\S+ → [a-z0-9-]+: [a-z_]+ ((failed after )?\d+\.\d\d s|… \d+ s so far)$")


def _cli(*args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "80"}
    return subprocess.run([sys.executable, "-m", "mobexport.cli", *args], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=timeout)


def _table(stdout: str) -> tuple[list[str], list[list[str]]]:
    """(header, rows) of the rich table printed whole (piped: one line per row)."""
    lines = [ln for ln in stdout.splitlines() if ln.startswith(("┃", "│"))]
    cells = [[c.strip() for c in ln.strip("┃│").split("┃" if ln.startswith("┃") else "│")] for ln in lines]
    return cells[0], cells[1:]


def test_export_all_mobileone_s0_bench(tmp_path):
    from mobexport.converters import all_targets, get_converter

    db = tmp_path / "results.db"
    p = _cli("export", "mobileone_s0", "--to", "all", "--bench", "--runs", "20", "--out", str(tmp_path),
             "--db", str(db))
    header, rows = _table(p.stdout)
    assert header == COLUMNS, p.stdout
    by_target = {r[0]: dict(zip(header, r, strict=True)) for r in rows}
    want = [t.id for t in all_targets() if get_converter(t.format).is_available().ok]
    assert list(by_target) == want  # every buildable target, in registry order, once, names never cut
    worst = 0
    for tid, row in by_target.items():
        conv = get_converter(tid.split("-")[0])
        status = row["status"].split(",")[0]
        if not conv.runtime_available().ok:  # Core ML here: exported, not validated, not timed, says why
            assert status == "UNVALIDATED_NO_RUNTIME" and row["status"].endswith("bench SKIPPED"), row
            assert row["min ms"] == "-" and row["runtime"] == "none here"
            assert f"{tid}: not validated: " in p.stdout
            assert re.search(rf"^{tid}: .*runtime unavailable", p.stdout, re.M), p.stdout
        else:
            assert status in ("OK", "MISMATCH"), row
            assert float(row["min ms"]) > 0 and float(row["p50 ms"]) >= float(row["min ms"])
            assert re.fullmatch(r"(rel|agree) .+", row["fidelity"]), row
            worst = max(worst, 0 if status == "OK" else 1)
        assert float(row["size MB"]) > 0 and float(row["export s"]) > 0
        assert Path(row["artifact"]).exists() and str(tmp_path) in row["artifact"]
    assert by_target["onnx-fp32"]["status"] == "OK"
    assert by_target["tflite-w8a8"]["fidelity"].startswith("agree ") and " dB" in by_target["tflite-w8a8"]["fidelity"]
    assert p.returncode == worst, p.stderr[-2000:]
    _check_stored(db, by_target, p)
    # piped: one plain line per finished step, with its time (nothing that redraws)
    steps = [ln for ln in p.stderr.splitlines() if " → " in ln]
    assert steps and all(STEP_LINE.match(ln) for ln in steps), steps[:5]
    assert "\r" not in p.stderr and "\x1b[" not in p.stderr


def _check_stored(db: Path, by_target: dict[str, dict[str, str]], export: subprocess.CompletedProcess) -> None:
    """export --bench stored each timed target, and `mobexport results` shows it with its artifact's size,
    weights and fidelity (the same as the export's table)."""
    timed = {t: row for t, row in by_target.items() if row["min ms"] != "-"}
    assert re.search(rf"^stored {len(timed)} result\(s\) in ", export.stderr, re.M), export.stderr[-2000:]
    p = _cli("results", "--db", str(db))
    assert p.returncode == 0, p.stderr
    header, rows = _table(p.stdout)
    for col in ("model", "weights", "target", "min ms", "size MB", "fidelity", "status"):
        assert col in header, header
    got = {r[header.index("target")]: dict(zip(header, r, strict=True)) for r in rows}
    assert set(got) == set(timed), (got, timed)
    for tid, row in got.items():
        assert row["model"] == "mobileone_s0" and row["weights"] == "random (seed 0)", row
        assert row["size MB"] == timed[tid]["size MB"] and row["fidelity"] == timed[tid]["fidelity"], row
        assert row["min ms"] == timed[tid]["min ms"], row
    as_json = json.loads(_cli("results", "--db", str(db), "--json").stdout)
    assert all(r["artifact"]["size_bytes"] > 0 and r["artifact"]["metrics"] for r in as_json)


def test_export_json_one_object_per_target_and_format_names(tmp_path):
    p = _cli("export", TINY, "--input-size", "64", "--to", "onnx,coreml-fp16,onnx-fp32", "--json",
             "--out", str(tmp_path))
    out = json.loads(p.stdout)
    assert [o["target"] for o in out] == ["onnx-fp32", "coreml-fp16"]  # a format name → its default; once each
    assert out[0]["status"] == "OK" and out[0]["fidelity_summary"].startswith("rel ")
    assert out[0]["size_bytes"] > 0 and out[0]["bench_status"] is None
    assert out[1]["status"] in ("UNVALIDATED_NO_RUNTIME", "OK")
    assert p.returncode == 0


def test_export_all_goes_on_past_a_failure(tmp_path):
    from mobexport import export_all
    from mobexport.exporter.status import Status

    recs = export_all(TINY, ["tflite-w8a8", "onnx"], input_size=64, calibration_dir=tmp_path / "no-such-dir",
                      out_dir=tmp_path / "out")
    assert [r.target for r in recs] == ["tflite-w8a8", "onnx-fp32"]
    bad, good = recs
    assert bad.status is Status.CONVERT_FAILED and bad.exit_code == 2 and "no-such-dir" in bad.reason
    assert bad.artifact is None and not (tmp_path / "out" / "build" / "tflite-w8a8").exists()
    assert good.status is Status.OK and Path(good.artifact).is_file() and good.exit_code == 0


def test_unknown_target_is_a_usage_error_before_any_export(tmp_path):
    p = _cli("export", TINY, "--to", "onnx,tflte", "--out", str(tmp_path))
    assert p.returncode == 2 and "unknown target 'tflte'" in p.stderr and "Did you mean" in p.stderr
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("spec", ["", " , "])
def test_empty_target_list_is_refused(spec):
    from mobexport.benchmarks.export_all import select_targets
    from mobexport.exporter.errors import UsageError

    with pytest.raises(UsageError):
        select_targets(spec)


def test_onnx_built_once_for_every_target_built_from_it(tmp_path):
    """onnx-fp32 and both TensorRT targets (built from onnx-fp32): one ONNX export, the same file under them."""
    from mobexport import export_all
    from mobexport.converters.manifest import read_manifest, sha256_path

    steps: list[str] = []
    recs = export_all(TINY, ["onnx", "tensorrt-fp16", "tensorrt-w8a8"], input_size=64, out_dir=tmp_path,
                      progress=steps.append)
    assert [r.target for r in recs] == ["onnx-fp32", "tensorrt-fp16", "tensorrt-w8a8"]
    assert steps.count("build → onnx-fp32: convert") == 1, steps
    assert steps.count("build → tensorrt-fp16: convert") == steps.count("build → tensorrt-w8a8: convert") == 1
    onnx_dir = tmp_path / "build" / "onnx-fp32"
    m = read_manifest(onnx_dir)
    assert m["sha256"] == sha256_path(onnx_dir / m["artifact"])
    assert not [p for p in (tmp_path / "build").iterdir() if p.name.startswith(".")]  # no staging left behind


LONG = "mobileone_s1_finetuned_on_our_warehouse_photos"


def _results_db(tmp_path: Path) -> Path:
    """A results database holding an iPhone's record (the apps' example payload, renamed to a long model name)
    and the host export record of the same artifact (by sha256): its size, weights and fidelity."""
    from mobexport.benchmarks.results import BenchmarkResult
    from mobexport.benchmarks.store import open_store
    from mobexport.benchmarks.store.artifacts import add_artifact

    payload = json.loads((ROOT / "benchmarks" / "schema" / "examples" / "ios_result.json").read_text())
    payload["model"] = LONG
    db = tmp_path / "r.db"
    with open_store(str(db)) as store:
        store.add(BenchmarkResult.from_dict(payload))
        add_artifact(store, {"sha256": payload["artifact_sha256"], "model": LONG, "target": "coreml-fp16",
                             "weights": "random weights (seed 0): latency is real, accuracy is not",
                             "size_bytes": 2_468_000, "status": "UNVALIDATED_NO_RUNTIME", "fidelity": {}})
        add_artifact(store, {"sha256": "cd" * 32, "model": LONG, "target": "tflite-w8a8", "weights": "w.pt",
                             "size_bytes": 1, "status": "OK",
                             "fidelity": {"metrics": {"top1_agreement": 0.99, "sqnr_db": 31.25}}})
    return db


def test_results_table_has_size_weights_fidelity_and_folds_to_the_width(tmp_path):
    db = _results_db(tmp_path)
    p = _cli("results", "--db", str(db))  # piped: printed whole, one line per row
    assert p.returncode == 0, p.stderr
    header, rows = _table(p.stdout)
    row = dict(zip(header, rows[0], strict=True))
    assert row["model"] == LONG and row["weights"] == "random" and row["size MB"] == "2.47"  # the app said "random"
    assert row["fidelity"] == "-" and row["status"] == "UNVALIDATED_NO_RUNTIME" and row["harness"] == "ios_app"
    from mobexport.benchmarks.store import open_store
    from mobexport.benchmarks.store.artifacts import artifact_info

    with open_store(str(db), read_only=True) as store:  # the int8 summary: agreement and SQNR
        assert artifact_info(store, ["cd" * 32])["cd" * 32]["fidelity"] == "agree 0.990, 31.2 dB"
    import pty

    master, slave = pty.openpty()  # an 80-column terminal: columns fold, the name and status stay whole
    proc = subprocess.Popen([sys.executable, "-m", "mobexport.cli", "results", "--db", str(db)], stdin=slave,
                            stdout=slave, stderr=slave, cwd=ROOT, env={**os.environ, "COLUMNS": "80"},
                            close_fds=True)
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    assert proc.wait(timeout=60) == 0
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", b"".join(chunks).decode()).replace("\r\n", "\n")
    lines = text.splitlines()
    assert max(len(ln) for ln in lines) <= 80, text
    assert any(LONG in ln for ln in lines) and any("UNVALIDATED_NO_RUNTIME" in ln for ln in lines), text
    for col in ("weights", "size MB", "fidelity"):  # headers fold too, but every column is there
        assert col.split()[0] in text, text
