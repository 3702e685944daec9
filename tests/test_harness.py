"""The host harness on real artifacts from the export pipeline (ONNX Runtime and LiteRT), the PyTorch
baseline, SKIPPED artifacts whose runtime is missing here, storing, posting to a real server, and plots."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from mobexport.benchmarks.harness import BenchConfig, find_artifacts, float_input, pinned
from mobexport.benchmarks.server import create_app, serve_in_thread
from mobexport.benchmarks.store import open_store
from mobexport.cli import main
from mobexport.exporter.errors import UsageError

MODEL = "mobileone_s0"


@pytest.fixture(scope="module")
def exports(tmp_path_factory) -> Path:
    """Real onnx-fp32 and tflite-fp32 exports of one model (random weights, randomized BN)."""
    from mobexport.converters import get_converter
    from mobexport.converters.pipeline import export

    out = tmp_path_factory.mktemp("exports")
    for target in ("onnx-fp32", "tflite-fp32"):
        avail = get_converter(target.split("-")[0]).is_available()
        if not avail.ok:
            pytest.skip(f"{target}: {avail.reason}")
        export(MODEL, target, out_dir=out, options={"random_bn_seed": 0})
    return out


def _bench_json(capsys, *argv) -> tuple[int, list[dict]]:
    code = main(["bench", *argv, "--json"])
    out = capsys.readouterr().out
    return code, json.loads(out) if out.strip() else []


def test_bench_stores_min_of_n_with_raw_samples_and_provenance(exports, tmp_path, capsys):
    db = str(tmp_path / "r.db")
    code, rows = _bench_json(capsys, str(exports), "--torch", MODEL, "--runs", "25", "--warmup", "2",
                             "--db", db, "--cooldown", "0.01")
    assert code == 0
    assert [(r["model"], r["target"]) for r in rows] == [
        (MODEL, "onnx-fp32"), (MODEL, "tflite-fp32"), (MODEL, "torch-fp32")]
    runtimes = {r["target"]: r["runtime"] for r in rows}
    assert runtimes == {"onnx-fp32": "onnxruntime", "tflite-fp32": "ai-edge-litert", "torch-fp32": "torch"}
    with open_store(db) as store:
        for r in rows:
            assert r["runs"] == 25 and 0 < r["min_ms"] <= r["p50_ms"] <= r["p90_ms"] <= r["max_ms"]
            assert r["harness"] == "host" and r["chip"] and r["device_model"] and r["timestamp"]
            stored = store.get(r["id"]).result
            assert len(stored.samples_ms) == 25 and min(stored.samples_ms) == r["min_ms"]
            assert stored.load_ms > 0 and stored.peak_rss_mb > 0
            assert stored.tool_versions["numpy"] == np.__version__
        for target in ("onnx-fp32", "tflite-fp32"):
            manifest = json.loads((exports / MODEL / target / "manifest.json").read_text())
            r = next(x for x in rows if x["target"] == target)
            assert r["artifact_sha256"] == manifest["sha256"]
            assert r["validation_status"] == manifest["status"]
            assert r["input_shape"][1:] == manifest["input"]["shape"][1:]
            assert r["weights"] == manifest["weights"]
    assert main(["results", "--db", db, "--json", "--target", "torch-fp32"]) == 0
    assert [r["model"] for r in json.loads(capsys.readouterr().out)] == [MODEL]


def test_runtime_missing_is_skipped_without_a_number(exports, tmp_path, capsys):
    """A Core ML package on Linux (or any host without the runtime): SKIPPED with the reason, nothing stored."""
    from mobexport.converters import get_converter
    from mobexport.converters.manifest import sha256_path

    if get_converter("coreml").runtime_available().ok:
        pytest.skip("this host can run Core ML")
    d = tmp_path / "exports" / MODEL / "coreml-fp16"
    (d / "m.mlpackage" / "Data").mkdir(parents=True)
    (d / "m.mlpackage" / "Data" / "w.bin").write_bytes(b"\0" * 64)
    manifest = json.loads((exports / MODEL / "onnx-fp32" / "manifest.json").read_text())
    manifest.update(target="coreml-fp16", artifact="m.mlpackage", sha256=sha256_path(d / "m.mlpackage"),
                    status="UNVALIDATED_NO_RUNTIME")
    (d / "manifest.json").write_text(json.dumps(manifest))
    db = str(tmp_path / "r.db")
    code, rows = _bench_json(capsys, str(d), "--runs", "5", "--db", db)
    assert code == 3
    assert rows == [{"model": MODEL, "target": "coreml-fp16", "artifact": str(d / "m.mlpackage"),
                     "bench_status": "SKIPPED", "reason": rows[0]["reason"], "runs": 0, "min_ms": None,
                     "p50_ms": None, "harness": "host"}]
    assert "macOS" in rows[0]["reason"] or "unavailable" in rows[0]["reason"]
    with open_store(db) as store:
        assert store.count() == 0


def test_batch_the_artifact_cannot_take_is_a_run_failure(exports, tmp_path, capsys):
    db = str(tmp_path / "r.db")
    code, rows = _bench_json(capsys, str(exports / MODEL / "tflite-fp32"), "--batch", "3", "--runs", "5",
                             "--db", db)
    assert code == 4 and rows[0]["bench_status"] == "RUN_FAILED" and rows[0]["min_ms"] is None
    with open_store(db) as store:
        assert store.count() == 0


def test_modified_artifact_and_bad_arguments_are_usage_errors(exports, tmp_path, capsys):
    copy = tmp_path / "copy"
    shutil.copytree(exports / MODEL / "onnx-fp32", copy)
    art = copy / json.loads((copy / "manifest.json").read_text())["artifact"]
    art.write_bytes(art.read_bytes() + b"\0")
    assert main(["bench", str(copy), "--no-store"]) == 2
    assert "changed since export" in capsys.readouterr().err
    assert main(["bench", str(tmp_path / "nothing-here"), "--no-store"]) == 2
    assert main(["bench", "--no-store"]) == 2
    assert main(["bench", str(exports), "--runs", "0", "--no-store"]) == 2
    assert main(["bench", str(exports), "--pin-cores", "9999", "--no-store"]) == 2
    assert main(["bench", str(exports), "--pin-cores", "a,b", "--no-store"]) == 2


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="no os.sched_setaffinity on this OS")
def test_pinning_applies_and_restores_affinity(exports, capsys):
    before = os.sched_getaffinity(0)
    core = min(before)
    with pinned([core]) as note:
        assert os.sched_getaffinity(0) == {core} and str(core) in note
    assert os.sched_getaffinity(0) == before
    code, rows = _bench_json(capsys, str(exports / MODEL / "onnx-fp32"), "--runs", "5", "--warmup", "0",
                             "--pin-cores", str(core), "--no-store")
    assert code == 0 and f"pinned to cores [{core}]" in rows[0]["notes"]
    assert os.sched_getaffinity(0) == before


def test_input_comes_from_the_manifest():
    m = {"model": "m", "target": "tflite-fp32", "input": {"shape": [1, 160, 128, 3], "dtype": "float32",
                                                          "layout": "NHWC"}}
    assert float_input(m, batch=4).shape == (4, 3, 160, 128)
    m["input"] = {"shape": [1, 3, 256, 192], "dtype": "float32", "layout": "NCHW"}
    assert float_input(m, batch=1).shape == (1, 3, 256, 192) and float_input(m, 1).dtype == np.float32
    with pytest.raises(UsageError, match="input shape"):
        float_input({"input": {"shape": [1, None]}}, 1)


def test_post_to_a_real_server(exports, tmp_path, capsys):
    app = create_app(str(tmp_path / "server.db"), token="t0k", artifacts_dir=exports)
    with serve_in_thread(app) as url:
        code, rows = _bench_json(capsys, str(exports / MODEL / "onnx-fp32"), "--runs", "5", "--no-store",
                                 "--post", url, "--token", "t0k")
        assert code == 0
        stored = app.state.store.query(with_samples=True)
        assert [(s.result.model, s.result.target, len(s.result.samples_ms)) for s in stored] == [
            (MODEL, "onnx-fp32", 5)]
        assert stored[0].result.min_ms == rows[0]["min_ms"]
        assert main(["bench", str(exports / MODEL / "onnx-fp32"), "--runs", "5", "--no-store",
                     "--post", url, "--token", "wrong"]) == 2


def test_plots_are_written(exports, tmp_path, capsys):
    db = str(tmp_path / "r.db")
    code, rows = _bench_json(capsys, str(exports / MODEL / "onnx-fp32"), "--torch", MODEL, "--runs", "10",
                             "--db", db)
    assert code == 0
    png = tmp_path / "pareto_params.png"
    assert main(["results", "--db", db, "--plot", str(png), "--y", "params"]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # random weights: no published top-1 is drawn for them (test_eval.py plots measured top-1)
    assert main(["results", "--db", db, "--plot", str(tmp_path / "pareto_top1.png")]) == 2
    assert "random-weight results have no meaningful top-1" in capsys.readouterr().err
    dist = tmp_path / "samples.png"
    assert main(["results", "--db", db, "--samples", str(rows[0]["id"]), "--plot", str(dist)]) == 0
    assert dist.read_bytes()[:4] == b"\x89PNG"
    assert main(["results", "--db", db, "--plot", str(tmp_path / "no" / "dir.png")]) == 2
    assert "matplotlib.pyplot" not in sys.modules or sys.modules["matplotlib"].get_backend().lower() == "agg"


def test_find_artifacts_accepts_dir_file_and_tree(exports):
    onnx_dir = exports / MODEL / "onnx-fp32"
    manifest = json.loads((onnx_dir / "manifest.json").read_text())
    by_dir, by_file = find_artifacts(onnx_dir), find_artifacts(onnx_dir / manifest["artifact"])
    assert by_dir[0].path == by_file[0].path == onnx_dir / manifest["artifact"]
    assert sorted(a.target for a in find_artifacts(exports)) == ["onnx-fp32", "tflite-fp32"]
    assert sorted(a.target for a in find_artifacts(exports / MODEL)) == ["onnx-fp32", "tflite-fp32"]
    assert BenchConfig().runs == 1000


def test_timed_runs_report_progress_from_the_worker(exports):
    """The worker reports the timed runs between blocks of runs (never inside one): the reports rise to
    (runs, runs), at most one per 100 ms plus the last, and the samples are still all there."""
    import time

    from mobexport.benchmarks.harness import run_benchmarks

    seen: list[tuple[int, int, float]] = []
    out = run_benchmarks([str(exports / MODEL / "onnx-fp32")], BenchConfig(runs=400, warmup=2),
                         report=lambda done, runs: seen.append((done, runs, time.monotonic())))
    assert out[0].result is not None and len(out[0].result.samples_ms) == 400
    assert seen and seen[-1][:2] == (400, 400), seen
    done = [d for d, _, _ in seen]
    assert done == sorted(set(done)) and all(r == 400 for _, r, _ in seen)
    gaps = [b[2] - a[2] for a, b in zip(seen[:-2], seen[1:-1], strict=True)]
    assert all(g > 0.05 for g in gaps), gaps  # ~100 ms apart (the last report comes when the runs end)


def test_time_round_trips_without_report_is_one_block():
    from mobexport.benchmarks.harness import time_round_trips

    class Runner:
        calls = 0

        def set_input(self, x):
            pass

        def invoke(self):
            Runner.calls += 1

        def get_output(self):
            return None

    reports: list[tuple[int, int]] = []
    assert len(time_round_trips(Runner(), np.zeros(1), 7)) == 7 and Runner.calls == 7
    assert len(time_round_trips(Runner(), np.zeros(1), 450, lambda d, r: reports.append((d, r)))) == 450
    assert reports[-1] == (450, 450) and Runner.calls == 457
