"""``mobexport sweep`` on a real two-node Ray cluster with a real PostgreSQL: tasks run on both nodes, a worker
killed mid-sweep is retried and every cell is recorded exactly once, a worker that dies on every attempt is
recorded failed with its reason, ``--resume`` skips done cells, ``--table`` keeps the matrix's cells, and a
SQLite database is refused for a multi-node cluster.

The cluster: ``MOBEXPORT_TEST_RAY_ADDRESS`` (.ci/run starts a head and a second node on this machine, one CPU
and one ``mobexport_bench`` each); without it the module starts such a cluster itself (``sweep.LocalCluster``)
and stops it after.
PostgreSQL: ``MOBEXPORT_TEST_PG_URL`` (skipped without it, as the store's tests).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mobexport.benchmarks.store import cells, open_store
from mobexport.benchmarks.sweep import LocalCluster
from tests.test_store import _fresh_pg_url

pytestmark = pytest.mark.xdist_group("ray")  # one xdist worker runs them all, one after the other
ROOT = Path(__file__).resolve().parents[1]
MODELS = ["mnv4_conv_s", "mobileone_s0", "moga_a", "repvgg_a0"]  # the quickest onnx-fp32 exports of the zoo


def _env() -> dict[str, str]:
    return {**os.environ, "RAY_AUTH_MODE": os.environ.get("RAY_AUTH_MODE", "token"), "RAY_USAGE_STATS_ENABLED": "0"}


@pytest.fixture(scope="module")
def cluster():
    """The address of a two-node Ray cluster on this machine: CI's, or one started here and stopped after (only
    its own processes: other Ray clusters on the machine are left alone)."""
    address = os.environ.get("MOBEXPORT_TEST_RAY_ADDRESS")
    if address:
        yield address
        return
    with LocalCluster(nodes=2, cpus=1) as local:
        yield local.address


@pytest.fixture(scope="module")
def pg():
    base = os.environ.get("MOBEXPORT_TEST_PG_URL")
    if not base:
        pytest.skip("MOBEXPORT_TEST_PG_URL not set: no PostgreSQL to test against (CI starts one)")
    return _fresh_pg_url(base)


def _sweep(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "mobexport", "sweep", *args], cwd=ROOT, env=_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(proc: subprocess.Popen, timeout: float = 420) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def _kill_one_running_worker(db: str, proc: subprocess.Popen, deadline_s: float = 240) -> dict:
    """SIGKILL the worker process of the first cell seen running (its first attempt); returns that cell's row."""
    with open_store(db) as store:
        end = time.monotonic() + deadline_s
        while time.monotonic() < end and proc.poll() is None:
            running = [r for r in cells.cell_rows(store) if r["state"] == "running" and r["pid"]
                       and r["attempts"] == 1 and r["phase"] == "export"]
            if running:
                os.kill(running[0]["pid"], signal.SIGKILL)
                return running[0]
            time.sleep(0.1)
    raise AssertionError("no cell was seen running")


def test_two_nodes_killed_worker_retried_every_cell_once(cluster, pg, tmp_path):
    proc = _sweep(*MODELS, "--to", "onnx-fp32", "--bench", "--runs", "20", "--warmup", "2", "--address", cluster,
                  "--db", pg, "--artifacts", str(tmp_path / "exports"), "--json")
    killed = _kill_one_running_worker(pg, proc)
    rc, out, err = _finish(proc)
    assert rc == 0, err[-3000:]
    summary = json.loads(out)
    with open_store(pg) as store:
        rows = cells.cell_rows(store, sweep=summary["sweep"])
        results = store.query(limit=100)
    assert sorted(r["model"] for r in rows) == sorted(MODELS)  # each cell recorded exactly once
    assert {r["state"] for r in rows} == {"done"} and {r["status"] for r in rows} == {"OK"}
    assert {r["record"]["status"] for r in rows} == {"OK"}  # the export's own status, kept under the bench's
    again = next(r for r in rows if r["key"] == killed["key"])
    assert again["record"]["attempts"] == 2, again  # the killed attempt, then the retry
    assert len(results) == len(MODELS) == len({r["result_id"] for r in rows})  # one bench result per cell
    assert {r.result.model for r in results} == set(MODELS)
    assert summary["nodes"] == 2 and len({r["record"]["node"] for r in rows}) == 2  # exports ran on both nodes
    assert _export_nodes(err) == {r["record"]["node"][:8] for r in rows}, err[-3000:]
    assert "running" in err and "failed 0" in err  # the console shows done, running and failed


def _export_nodes(console: str) -> set[str]:
    """Node ids the console names for finished export cells (``... export: OK 3.1 s on node 1a2b3c4d``)."""
    return {line.rsplit("on node ", 1)[1].split()[0] for line in console.splitlines()
            if " export: " in line and "on node " in line}


def test_resume_skips_done_cells_and_table_keeps_other_cells(cluster, pg, tmp_path):
    """Continues on the database of the test above: the same inputs are done, nothing runs again."""
    with open_store(pg) as store:
        before = {r["key"]: r["finished"] for r in cells.cell_rows(store)}
    assert before, "needs the cells of test_two_nodes_killed_worker_retried_every_cell_once"
    table = tmp_path / "matrix.md"
    other = {"model": "zz_other", "target": "tflite-fp32", "weights": "real", "status": "OK", "fidelity": "x",
             "mb": 1.0, "s": 2.0}
    table.with_suffix(".jsonl").write_text(json.dumps(other) + "\n")
    rc, out, err = _finish(_sweep(*MODELS, "--to", "onnx-fp32", "--bench", "--runs", "20", "--warmup", "2",
                                  "--address", cluster, "--db", pg, "--resume", "--table", str(table), "--json"))
    assert rc == 0, err[-3000:]
    summary = json.loads(out)
    assert summary["skipped"] == len(MODELS) and f"{len(MODELS)} skipped" in err
    with open_store(pg) as store:
        after = {r["key"]: r["finished"] for r in cells.cell_rows(store)}
    assert after == before  # no cell was touched
    lines = [json.loads(x) for x in table.with_suffix(".jsonl").read_text().splitlines()]
    assert {(c["model"], c["target"]) for c in lines} == {("zz_other", "tflite-fp32")} | {
        (m, "onnx-fp32") for m in MODELS}
    md = table.read_text()
    assert "| model | target | status | fidelity | MB | s |" in md and "| zz_other | tflite-fp32 | OK |" in md
    assert all(f"| {m} | onnx-fp32 | OK | rel " in md for m in MODELS)


def test_worker_dying_on_every_attempt_is_recorded_failed(cluster, pg, tmp_path):
    model = f"{ROOT / 'tests' / 'fixtures' / 'crash_model.py'}:build"
    rc, out, err = _finish(_sweep(model, "--to", "onnx-fp32", "--retries", "1", "--address", cluster, "--db", pg,
                                  "--artifacts", str(tmp_path), "--json"))
    assert rc == 4, err[-3000:]
    summary = json.loads(out)
    (cell,) = summary["cells"]
    assert cell["state"] == "failed" and cell["status"] == "CONVERT_FAILED" and cell["attempts"] == 2
    assert "worker died on all 2 attempts" in cell["reason"] and "failed 1" in err


def test_sqlite_refused_on_a_multi_node_cluster(cluster, tmp_path):
    db = tmp_path / "results.db"
    rc, out, err = _finish(_sweep(MODELS[0], "--to", "onnx-fp32", "--address", cluster, "--db", str(db)))
    assert rc == 2 and "SQLite" in err and "2 nodes" in err and "postgresql://" in err
    assert not (tmp_path / "exports").exists()


def test_embedded_local_cluster_with_sqlite_and_an_fsspec_url(tmp_path):
    """Without --address Ray starts in the sweep's own process (one node: a SQLite file is fine there), also
    beside a running cluster; artifacts go through fsspec to a file:// URL."""
    db, art = tmp_path / "results.db", tmp_path / "artifacts"
    rc, out, err = _finish(_sweep(MODELS[1], "--to", "onnx-fp32", "--num-cpus", "1", "--db", str(db),
                                  "--artifacts", art.as_uri(), "--json"))
    assert rc == 0, err[-3000:]
    (cell,) = json.loads(out)["cells"]
    assert cell["state"] == "done" and cell["status"] == "OK" and json.loads(out)["nodes"] == 1
    assert cell["record"]["artifact"] == f"{art.as_uri()}/{MODELS[1]}/onnx-fp32/{MODELS[1]}.onnx"
    folder = art / MODELS[1] / "onnx-fp32"
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["sha256"] == cell["record"]["sha256"] and (folder / f"{MODELS[1]}.onnx").is_file()
    with open_store(str(db)) as store:
        (row,) = cells.cell_rows(store)
    assert (row["model"], row["state"], row["attempts"]) == (MODELS[1], "done", 1)
