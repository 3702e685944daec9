"""The models × targets sweep on Ray (``mobexport sweep``): every cell (model, weights, target, options) is one Ray
task; results and cell states go to one database, artifacts to one shared place.

``sweep(models, targets, address=None, db=..., artifacts="exports", resume=False, bench=False)``:

- Without ``address`` Ray starts a local cluster in this process (the embedded default); ``auto`` joins the
  cluster started on this machine with ``ray start``; ``ray://HOST:PORT`` connects as a Ray client.
- Cell states live in the store's ``sweep_cells`` table (store/cells.py), keyed by the sha256 of the cell's
  inputs: model, weights sha256, target, options and tool versions. ``resume`` skips a cell already done with
  the same key. Workers write their own cell's state and result, so on a cluster of more than one node the
  database must be PostgreSQL: a SQLite file is one machine's and is refused with a UsageError.
- Export tasks take one CPU each and are spread over the nodes. A worker that dies (killed, out of memory,
  a crash in a backend) is retried ``retries`` times (default ``RETRIES`` = 2: three attempts in all); failing
  again, the cell is recorded ``failed`` with the reason. An export error is not retried: it is the cell's
  outcome (its Status and message), as in the matrix.
- Bench cells need a quiet machine: they run after the sweep's exports are all finished, each needing the
  per-node resource ``mobexport_bench`` (1 per node), so at most one bench runs on a node at a time and never
  beside an export of the sweep. A cluster started by hand declares it: ``ray start ...
  --resources='{"mobexport_bench": 1}'``.
- Artifacts: a folder (default ``exports``; on a multi-node cluster it must be shared by the nodes) or an fsspec
  URL (``s3://bucket/x``, ``file:///mnt/x``, where that filesystem's package is installed): each task exports
  to a temporary folder and uploads ``<model>/<target>/``; a bench task downloads it.

``render_matrix`` / ``update_matrix`` write results/matrix.md (and its cells, results/matrix.jsonl) from the
cells' records: the table ``make matrix`` keeps.
"""

from __future__ import annotations

import hashlib
import json
import os
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mobexport.exporter.errors import MobexportError, UsageError
from mobexport.exporter.status import Status

RETRIES = 2  # a dead worker's task is retried twice (three attempts), then the cell is recorded failed
BENCH_RESOURCE = "mobexport_bench"  # one per node: at most one bench cell on a node at a time
ENV_PASSED = ("MOBEXPORT_ASSETS", "MOBEXPORT_VERBOSE", "TF_CPP_MIN_LOG_LEVEL", "GLOG_minloglevel", "TQDM_DISABLE",
              "LITERT_TORCH_SHOW_PROGRESS")
OBJECT_STORE_BYTES = 100 * 1024 ** 2  # the embedded cluster's object store: tasks pass only small dicts


@dataclass(frozen=True)
class BenchSpec:
    runs: int = 100
    warmup: int = 10
    threads: int = 1


@dataclass
class SweepSummary:
    sweep: str
    planned: int
    skipped: int
    nodes: int
    cells: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def failed(self) -> list[dict[str, Any]]:
        return [c for c in self.cells if c["state"] != "done"]

    def to_json(self) -> dict[str, Any]:
        return {"sweep": self.sweep, "planned": self.planned, "skipped": self.skipped, "nodes": self.nodes,
                "seconds": round(self.seconds, 1),
                "cells": [{k: c[k] for k in ("model", "target", "state", "status", "reason", "attempts", "node",
                                             "record")} for c in self.cells]}


# ---------------------------------------------------------------- cells and their keys

def default_weights(model: str) -> str | None:
    """The model's real weights file when the assets have it, else None (random weights, BatchNorm statistics
    randomised with seed 0). A factory reference (the user's code) has no default weights."""
    from mobexport.api import get_spec
    from mobexport.exporter import assets
    from mobexport.exporter.errors import WeightsError
    from mobexport.exporter.source import is_factory_ref

    if is_factory_ref(model):
        return None
    spec = get_spec(model)
    if not spec.default_weights:
        return None
    try:
        return str(assets.weights_path(spec.default_weights))
    except WeightsError:
        return None


def cell_tool_versions(target: str) -> dict[str, str]:
    """The versions a cell's outcome depends on: mobexport, python, numpy, torch, the runtimes and the target's
    converter packages."""
    from mobexport.benchmarks.harness import tool_versions
    from mobexport.converters import get_converter, resolve_target

    return {**tool_versions(), **get_converter(resolve_target(target).format).tool_versions()}


def make_cell(model: str, target: str, *, options: dict[str, Any] | None = None, bench: BenchSpec | None = None,
              versions: dict[str, str] | None = None) -> dict[str, Any]:
    """One cell with its key: sha256 over model, weights sha256, target, options and tool versions."""
    from mobexport.exporter import assets
    from mobexport.exporter.source import is_factory_ref

    w = default_weights(model)
    opts = {"random_bn_seed": None if w else 0, **(options or {})}
    wsha = assets.sha256_file(Path(w)) if w else "random"
    model_id = model
    if is_factory_ref(model) and Path(model.rsplit(":", 1)[0]).is_file():  # the user's file: its content counts
        model_id = f"{model}@{assets.sha256_file(Path(model.rsplit(':', 1)[0]))}"
    versions = versions or cell_tool_versions(target)
    key_src = json.dumps([model_id, wsha, target, opts, versions], sort_keys=True)
    return {"key": hashlib.sha256(key_src.encode()).hexdigest(), "model": model, "target": target,
            "weights": w or "", "weights_sha256": wsha, "options": opts, "tool_versions": versions,
            "bench": bool(bench), "bench_spec": bench.__dict__ if bench else None}


def matrix_row(cell: dict[str, Any], *, out_dir: str) -> dict[str, Any]:
    """Export one cell in this process and describe the outcome as the matrix records it (model, target,
    weights, status, fidelity, mb, s; float_ops for TFLite; error for a failed export). A failed export is a
    record too, with ``Status.of_error``'s status."""
    from mobexport.converters.pipeline import export

    t0 = time.perf_counter()
    w = cell["weights"] or None
    row = {"model": cell["model"], "target": cell["target"],
           "weights": "real" if w else "random (BN randomised, seed 0)"}
    try:
        r = export(cell["model"], cell["target"], weights=w, out_dir=out_dir, options=dict(cell["options"]))
    except MobexportError as e:
        return {**row, "status": Status.of_error(e).value, "error": type(e).__name__,
                "fidelity": str(e).splitlines()[0][:100], "mb": None, "s": round(time.perf_counter() - t0, 1)}
    if "tflite" in r.manifest:
        row["float_ops"] = r.manifest["tflite"].get("float_ops", {})
    return {**row, "status": r.status.value, "fidelity": fidelity_text(r.fidelity),
            "mb": round(r.manifest["size_bytes"] / 1e6, 2), "s": round(time.perf_counter() - t0, 1),
            "artifact": str(r.artifact), "sha256": r.manifest.get("sha256")}


def fidelity_text(fidelity: dict[str, Any]) -> str:
    m = fidelity.get("metrics", {})
    if not m:
        return "; ".join(fidelity.get("failures", [])) or fidelity.get("inputs", "")
    return (f"rel {m.get('max_abs', 0) / max(m.get('output_range', 1), 1e-12):.1e}, cos {m.get('cosine', 0):.5f}, "
            f"SQNR {m.get('sqnr_db', 0):.1f} dB, top-1 {m.get('top1_agreement', 0):.2f}")


# ---------------------------------------------------------------- artifacts: a folder or an fsspec URL

def _is_url(location: str) -> bool:
    return "://" in location


def check_artifacts(location: str) -> str:
    """A folder (made here, returned absolute) or an fsspec URL whose filesystem is installed."""
    if not _is_url(location):
        p = Path(location).expanduser().resolve()
        try:
            p.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise UsageError(f"--artifacts {location}: cannot create the folder: {e}") from e
        return str(p)
    import fsspec

    try:
        fsspec.core.url_to_fs(location)
    except (ImportError, ValueError) as e:
        raise UsageError(f"--artifacts {location}: no filesystem for this URL here: {e}",
                         hint="install the fsspec filesystem package for it (s3fs, gcsfs, ...) or pass a folder") from e
    return location


def _upload(local_dir: Path, location: str, model: str, target: str) -> str:
    import fsspec

    fs, root = fsspec.core.url_to_fs(location)
    dest = f"{root.rstrip('/')}/{model}/{target}"
    fs.makedirs(dest, exist_ok=True)
    for f in sorted(local_dir.iterdir()):
        if f.is_file():
            fs.put_file(str(f), f"{dest}/{f.name}")
    return f"{location.rstrip('/')}/{model}/{target}"


def _download(url: str, local: Path) -> Path:
    import fsspec

    fs, root = fsspec.core.url_to_fs(url)
    local.mkdir(parents=True, exist_ok=True)
    for f in fs.ls(root, detail=False):
        fs.get_file(f, str(local / Path(f).name))
    return local


# ---------------------------------------------------------------- the tasks (run in Ray workers)

def _node_id() -> str:
    import ray

    return ray.get_runtime_context().get_node_id()


def export_task(cell: dict[str, Any], db: str, artifacts: str, sweep: str) -> dict[str, Any]:
    """Ray task: claim the cell, export it, store its record; a retry of a cell already finished does nothing."""
    from mobexport.benchmarks.store import cells, open_store

    with open_store(db) as store:
        claimed = cells.claim(store, cell["key"], sweep, "export", _node_id(), os.getpid())
        if claimed is None:
            return {"key": cell["key"], "skipped": True}
        try:
            if _is_url(artifacts):
                with tempfile.TemporaryDirectory() as tmp:
                    row = matrix_row(cell, out_dir=tmp)
                    if row.get("artifact"):
                        row["artifact"] = _upload(Path(row["artifact"]).parent, artifacts, cell["model"],
                                                  row["target"]) + "/" + Path(row["artifact"]).name
            else:
                row = matrix_row(cell, out_dir=artifacts)
        except Exception as e:  # not a MobexportError: a bug or a backend's own exception; the cell's outcome
            row = {"model": cell["model"], "target": cell["target"], "status": Status.CONVERT_FAILED.value,
                   "error": type(e).__name__, "fidelity": f"internal error: {str(e).splitlines()[0][:100]}"
                   if str(e) else "internal error", "mb": None, "s": None}
        row["attempts"], row["node"] = claimed["attempts"], _node_id()
        cells.finish(store, cell["key"], state="done", status=row["status"], reason=row.get("error") and
                     row["fidelity"] or "", record=row, phase="export")
    return {"key": cell["key"], **row}


def bench_task(cell: dict[str, Any], db: str, artifact: str, sweep: str) -> dict[str, Any]:
    """Ray task (one ``mobexport_bench`` resource: alone on its node): time the cell's artifact with the host
    harness (a fresh worker process per artifact); the result and the cell's state are written together."""
    from mobexport.benchmarks.harness import BenchConfig, bench_artifact, find_artifacts
    from mobexport.benchmarks.store import cells, open_store

    spec = BenchSpec(**cell["bench_spec"])
    with open_store(db) as store:
        if cells.claim(store, cell["key"], sweep, "bench", _node_id(), os.getpid()) is None:
            return {"key": cell["key"], "skipped": True}
        with tempfile.TemporaryDirectory() as tmp:
            folder = _download(artifact.rsplit("/", 1)[0], Path(tmp)) if _is_url(artifact) else Path(artifact).parent
            try:
                o = bench_artifact(find_artifacts(folder)[0], BenchConfig(runs=spec.runs, warmup=spec.warmup,
                                                                          threads=spec.threads))
                status, reason, result = o.bench_status, o.reason or "", o.result
            except MobexportError as e:
                status, reason, result = Status.RUN_FAILED, str(e), None
        rec = {"bench_status": status.value, "bench_reason": reason,
               "min_ms": result.min_ms if result else None, "p50_ms": result.p50_ms if result else None,
               "bench_node": _node_id()}
        cells.finish(store, cell["key"], state="done", status=status.value, reason=reason, record=rec,
                     result=result, phase="bench")
    return {"key": cell["key"], **rec, "node": rec["bench_node"]}


# ---------------------------------------------------------------- the driver

def connect(address: str | None, num_cpus: int | None = None) -> None:
    """Start the embedded local cluster (``address`` None) or join one; the workers get this process's
    mobexport environment variables."""
    import logging

    import ray

    if not os.environ.get("MOBEXPORT_VERBOSE"):  # Ray's start-up notices; our progress lines say what runs where
        logging.getLogger("ray").setLevel(logging.ERROR)
    env = {k: os.environ[k] for k in ENV_PASSED if k in os.environ}
    if "MOBEXPORT_ASSETS" in env:
        env["MOBEXPORT_ASSETS"] = str(Path(env["MOBEXPORT_ASSETS"]).resolve())
    kw: dict[str, Any] = {"runtime_env": {"env_vars": env}, "log_to_driver": bool(os.environ.get("MOBEXPORT_VERBOSE")),
                          "configure_logging": False}
    if address is None:
        kw.update(num_cpus=num_cpus or os.cpu_count() or 1, resources={BENCH_RESOURCE: 1},
                  include_dashboard=False, object_store_memory=OBJECT_STORE_BYTES)
    elif num_cpus:
        raise UsageError("--num-cpus sizes the embedded local cluster only; a running cluster has its own")
    try:  # "local": a new cluster even where one started with `ray start` runs (None would join that one)
        ray.init(address=address or "local", **kw)
    except (ConnectionError, RuntimeError, ValueError) as e:
        raise UsageError(f"cannot reach the Ray cluster at {address}: {str(e).splitlines()[0][:300]}",
                         hint="start one with 'ray start --head', or leave out --address for a local one") from e


def alive_nodes() -> list[str]:
    import ray

    return sorted(n["NodeID"] for n in ray.nodes() if n.get("Alive"))


def check_database(url: str, nodes: int, address: str | None) -> None:
    """SQLite is one machine's file: refused for a cluster of more than one node or a remote one."""
    if url.startswith("sqlite") and (nodes > 1 or (address or "").startswith("ray://")):
        where = f"a Ray cluster of {nodes} nodes" if nodes > 1 else f"the remote Ray cluster {address}"
        raise UsageError(f"the results database is a SQLite file, which only this machine can write; {where} "
                         "needs one database every node reaches",
                         hint="pass --db postgresql://USER@HOST:PORT/DB (a PostgreSQL server the nodes reach)")


def sweep(models: list[str], targets: list[str], *, address: str | None = None, db: str | None = None,
          artifacts: str = "exports", resume: bool = False, bench: BenchSpec | None = None,
          options: dict[str, Any] | None = None, retries: int = RETRIES, num_cpus: int | None = None,
          progress: Callable[[str], None] | None = None) -> SweepSummary:
    """Run every (model, target) cell as a Ray task (see the module docstring); returns the summary with every
    cell's final row. Ray is shut down on return."""
    import ray

    from mobexport.benchmarks.store import cells, normalize_url, open_store

    say = progress or (lambda _msg: None)
    url = normalize_url(db)
    artifacts = check_artifacts(artifacts)
    planned = [make_cell(m, t, options=options, bench=bench) for m in models for t in targets]
    connect(address, num_cpus)
    try:
        nodes = alive_nodes()
        check_database(url, len(nodes), address)
        if bench and ray.cluster_resources().get(BENCH_RESOURCE, 0) < 1:
            raise UsageError(f"--bench needs the per-node resource '{BENCH_RESOURCE}', which this cluster lacks",
                             hint=f"start each node with: ray start ... --resources='{{\"{BENCH_RESOURCE}\": 1}}'")
        sid = str(uuid.uuid4())
        t0 = time.perf_counter()
        with open_store(url) as store:
            todo = [c for c in planned if cells.plan(store, sid, c, resume=resume)]
            say(f"sweep {sid[:8]}: {len(planned)} cells, {len(planned) - len(todo)} skipped (done with the same "
                f"inputs), {len(todo)} to run on {len(nodes)} node{'s' * (len(nodes) != 1)} "
                f"({int(ray.cluster_resources().get('CPU', 0))} CPUs)")
            _Runner(store, sid, url, artifacts, retries, nodes, say).run(todo, bench is not None)
            rows = cells.cell_rows(store, keys=[c["key"] for c in planned])
        return SweepSummary(sid, len(planned), len(planned) - len(todo), len(nodes), rows, time.perf_counter() - t0)
    finally:
        ray.shutdown()


def _note(out: dict[str, Any]) -> str:
    """``OK 3.1 s on node 1a2b3c4d`` (export) or ``OK min 0.52 ms on node 1a2b3c4d`` (bench)."""
    what = f"{out['s']} s" if "s" in out else f"min {out.get('min_ms')} ms"
    return f"{out.get('status') or out.get('bench_status')} {what} on node {str(out.get('node'))[:8]}"


class _Runner:
    """Submits the tasks, waits for them, records a cell whose worker died on every attempt, prints progress."""

    def __init__(self, store, sid, url, artifacts, retries, nodes, say):
        self.store, self.sid, self.url, self.artifacts = store, sid, url, artifacts
        self.retries, self.nodes, self.say = retries, nodes, say
        self.total = self.finished = self.failed = 0
        self._last: tuple[tuple[int, int, int], float] = ((-1, -1, -1), 0.0)  # counts and time of the last line

    def run(self, todo: list[dict[str, Any]], bench: bool) -> None:
        import ray

        export = ray.remote(export_task).options(num_cpus=1, max_retries=self.retries, scheduling_strategy="SPREAD")
        self.total = len(todo) * (2 if bench else 1)
        self._wait({export.remote(c, self.url, self.artifacts, self.sid): (c, "export") for c in todo})
        if not bench:
            return
        from mobexport.benchmarks.store import cells

        rows = {r["key"]: r for r in cells.cell_rows(self.store, keys=[c["key"] for c in todo])}
        timed = ray.remote(bench_task).options(num_cpus=1, max_retries=self.retries,
                                               resources={BENCH_RESOURCE: 1})
        refs = {}
        for c in todo:
            artifact = rows[c["key"]]["record"].get("artifact")
            if rows[c["key"]]["state"] == "done" and artifact:
                refs[timed.remote(c, self.url, artifact, self.sid)] = (c, "bench")
            else:
                self.finished += 1  # nothing to time: the export failed
        self._wait(refs)

    def _wait(self, refs: dict) -> None:
        import ray

        while refs:
            ready, _ = ray.wait(list(refs), num_returns=1, timeout=10.0)
            if not ready:
                self._line("")
                continue
            cell, phase = refs.pop(ready[0])
            self.finished += 1
            try:
                out = ray.get(ready[0])
                note = "already recorded by an earlier attempt" if out.get("skipped") else _note(out)
            except ray.exceptions.RayError as e:
                note = self._record_death(cell, phase, e)
            self._line(f"{cell['model']} {cell['target']} {phase}: {note}")

    def _record_death(self, cell: dict[str, Any], phase: str, exc: Exception) -> str:
        from mobexport.benchmarks.store import cells

        self.failed += 1
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        reason = f"worker died on all {self.retries + 1} attempts ({type(exc).__name__}): {first}"
        status = Status.CONVERT_FAILED if phase == "export" else Status.RUN_FAILED
        cells.finish(self.store, cell["key"], state="failed", status=status.value, reason=reason,
                     record={"error": type(exc).__name__}, phase=phase)
        return f"FAILED: {reason}"

    def _line(self, what: str) -> None:
        """One line per finished cell; while none finishes, a line when the counts change or every minute."""
        from mobexport.benchmarks.store import cells

        running = cells.state_counts(self.store, self.sid).get("running", 0)
        counts = (self.finished, running, self.failed)
        if not what and counts == self._last[0] and time.monotonic() - self._last[1] < 60:
            return
        self._last = (counts, time.monotonic())
        self.say(f"[done {self.finished}/{self.total} · running {running} · failed {self.failed}] {what}".rstrip())


# ---------------------------------------------------------------- a multi-node cluster on this machine

class LocalCluster:
    """A Ray cluster of ``nodes`` nodes on this machine (``ray start``: a head, then nodes joining it), each with
    ``cpus`` CPUs, one ``mobexport_bench`` and a small object store; for tests and benchmarks. Its processes
    live under their own temporary folder, and ``stop()`` ends those processes only (by pid), not other Ray
    clusters on the machine (``ray stop`` would end them all)."""

    def __init__(self, nodes: int = 2, cpus: int = 1, ray_bin: str | None = None):
        import socket
        import subprocess
        import sys

        self.ray = ray_bin or str(Path(sys.executable).with_name("ray"))
        self.temp = tempfile.mkdtemp(prefix="mxray", dir="/tmp")  # short: Ray's socket paths must fit 107 chars
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.address = f"127.0.0.1:{port}"
        self.env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_USAGE_STATS_ENABLED": "0"}
        flags = [f"--num-cpus={cpus}", f'--resources={{"{BENCH_RESOURCE}": 1}}', "--object-store-memory=80000000",
                 "--disable-usage-stats"]
        run = dict(env=self.env, check=True, capture_output=True, timeout=300)
        try:
            subprocess.run([self.ray, "get-auth-token", "--generate"], **run)
            subprocess.run([self.ray, "start", "--head", f"--port={port}", "--include-dashboard=false",
                            f"--temp-dir={self.temp}/0", *flags], **run)
            for i in range(1, nodes):
                subprocess.run([self.ray, "start", f"--address={self.address}", f"--temp-dir={self.temp}/{i}",
                                *flags], **run)
        except subprocess.CalledProcessError as e:
            self.stop()
            raise RuntimeError(f"ray start failed: {e.stderr.decode(errors='replace')[-2000:]}") from e

    def _pids(self) -> list[int]:
        """This cluster's processes: those whose command line names its folder, and their descendants."""
        import psutil

        me = {os.getpid(), *(p.pid for p in psutil.Process().parents())}
        own = [p for p in psutil.process_iter(["cmdline"])
               if p.pid not in me and self.temp in " ".join(p.info["cmdline"] or [])]
        pids = {p.pid for p in own}
        for p in own:
            try:
                pids |= {c.pid for c in p.children(recursive=True)}
            except psutil.Error:
                pass
        return sorted(pids)

    def stop(self) -> None:
        import shutil

        import psutil

        procs = []
        for pid in self._pids():
            try:
                procs.append(psutil.Process(pid))
                procs[-1].terminate()
            except psutil.Error:
                pass
        _, alive = psutil.wait_procs(procs, timeout=10)
        for p in alive:
            try:
                p.kill()
            except psutil.Error:
                pass
        shutil.rmtree(self.temp, ignore_errors=True)

    def __enter__(self) -> LocalCluster:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


# ---------------------------------------------------------------- the matrix table (results/matrix.md)

def load_matrix(path: Path) -> dict[tuple[str, str], dict[str, Any]]:
    """Cells of a matrix .jsonl file (the latest record of a cell wins)."""
    out: dict[tuple[str, str], dict[str, Any]] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            if line.strip():
                c = json.loads(line)
                out[(c["model"], c["target"])] = c
    return out


MATRIX_KEYS = ("model", "target", "weights", "status", "fidelity", "mb", "s", "error", "float_ops")


def update_matrix(table: Path, rows: list[dict[str, Any]], targets: list[str]) -> None:
    """Merge the exported cells of ``rows`` (cell rows of the store) into ``table``'s .jsonl beside it, then render
    ``table`` from all its cells. Cells that failed (a dead worker) are not matrix records and stay out."""
    jsonl = table.with_suffix(".jsonl")
    cells = load_matrix(jsonl)
    for r in rows:
        rec = r["record"]
        if r["state"] == "done" and rec.get("status"):
            cells[(r["model"], r["target"])] = {k: rec[k] for k in MATRIX_KEYS if k in rec}
    ordered = sorted(cells.values(), key=lambda c: (c["model"], _target_rank(c["target"], targets)))
    jsonl.write_text("".join(json.dumps(c) + "\n" for c in ordered))
    table.write_text(render_matrix(cells, targets))


def _target_rank(t: str, targets: list[str]) -> tuple[int, str]:
    return (targets.index(t) if t in targets else 99, t)


def render_matrix(cells: dict[tuple[str, str], dict[str, Any]], targets: list[str]) -> str:
    rows = ["| model | target | status | fidelity | MB | s |", "|---|---|---|---|---|---|"]
    for (m, t), c in sorted(cells.items(), key=lambda kv: (kv[0][0], _target_rank(kv[0][1], targets))):
        rows.append(f"| {m} | {t} | {c['status']} | {c['fidelity']} | {'' if c['mb'] is None else c['mb']} "
                    f"| {'' if c['s'] is None else c['s']} |")
    summary = ["| target | cells | OK | UNVALIDATED_NO_RUNTIME | other | total s | median s | max s (model) |",
               "|---|---|---|---|---|---|---|---|"]
    for t in targets:
        cs = [c for (_, tt), c in cells.items() if tt == t]
        if not cs:
            continue
        ok = sum(c["status"] == Status.OK for c in cs)
        unval = sum(c["status"] == Status.UNVALIDATED_NO_RUNTIME for c in cs)
        timed = [c for c in cs if c["s"] is not None] or [{"s": 0.0, "model": "-"}]
        slow = max(timed, key=lambda c: c["s"])
        summary.append(f"| {t} | {len(cs)} | {ok} | {unval} | {len(cs) - ok - unval} "
                       f"| {sum(c['s'] for c in timed):.0f} | {statistics.median(c['s'] for c in timed):.1f} "
                       f"| {slow['s']:.0f} ({slow['model']}) |")
    return ("# Conversion matrix\n\nGenerated by `mobexport sweep --to all --table results/matrix.md` (`make "
            "matrix`) from results/matrix.jsonl on a 2-core x86 host, one torch thread per cell; times are wall "
            "seconds per cell (export + validation + manifest), measured with up to two cells side by side. Real "
            "weights where the assets have them (MobileNetV2, EfficientNet-Lite0/1/2), otherwise random weights "
            "with randomised BatchNorm statistics.\n\n## Summary (export time per target)\n\n" + "\n".join(summary)
            + "\n\n## Cells\n\n" + "\n".join(rows) + "\n")
