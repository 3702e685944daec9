"""The timing protocol, and the worker process each artifact is timed in.

``measure(job)`` loads one artifact through its runtime (``converters/runtimes``), warms it up and times
``runs`` round trips set input → invoke → read output with ``perf_counter_ns`` and the garbage collector off.
``run_in_worker(job, timeout_s)`` does it in a fresh process started with the *spawn* method (never fork: a
forked child would inherit the parent's torch and every backend already imported, and their memory). That
process imports this module, numpy and the one runtime module the job names — not torch (unless the runtime is
PyTorch itself) — so its ``load_ms``, peak RSS and RSS growth at load are the model's own. The result comes
back over a pipe; a worker that dies or hangs is an error dict with the reason, never a number.

This module imports nothing heavy at module level: it is what a worker process imports first.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import os
import resource
import signal
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

# the protocol: the one timing loop lives in the runtime layer, where converters can use it too; re-exported here
from mobexport.converters.runtimes._timing import REPORT_EVERY_NS, time_round_trips, warm_up  # noqa: F401

# ---------------------------------------------------------------- memory and cores


class PeakRSS:
    """Peak resident memory since ``reset`` (Linux: VmHWM after clear_refs; elsewhere the process peak)."""

    def reset(self) -> None:
        with contextlib.suppress(OSError):
            Path("/proc/self/clear_refs").write_text("5")

    def peak_mb(self) -> float:
        return _status_mb("VmHWM:") or _ru_maxrss_mb()

    @staticmethod
    def current_mb() -> float | None:
        return _status_mb("VmRSS:")


def _status_mb(key: str) -> float | None:
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key):
                return int(line.split()[1]) / 1024
    return None


def _ru_maxrss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1 << 20) if sys.platform == "darwin" else peak / 1024


@contextlib.contextmanager
def pinned(cores: list[int] | None) -> Iterator[str]:
    """Pin this process to ``cores`` for the duration (os.sched_setaffinity); yields a note for the record."""
    if not cores:
        yield ""
        return
    if not hasattr(os, "sched_setaffinity"):
        from mobexport.exporter.errors import UsageError

        raise UsageError(f"--pin-cores is not supported on {sys.platform} (no os.sched_setaffinity)")
    before = os.sched_getaffinity(0)
    if not set(cores) <= before:
        from mobexport.exporter.errors import UsageError

        raise UsageError(f"--pin-cores {cores}: this process may only use cores {sorted(before)}")
    os.sched_setaffinity(0, set(cores))
    try:
        yield f"pinned to cores {sorted(set(cores))}"
    finally:
        os.sched_setaffinity(0, before)


# ---------------------------------------------------------------- one measurement

def _runtime(job: dict[str, Any]):
    """The job's runtime, importing only its module (from its file when a plugin folder holds it)."""
    name, module = job["runtime"], job["runtime_module"]
    try:
        importlib.import_module(module)
    except ModuleNotFoundError:
        spec = importlib.util.spec_from_file_location(module, job["runtime_file"])
        mod = importlib.util.module_from_spec(spec)
        sys.modules[module] = mod
        spec.loader.exec_module(mod)
    from mobexport.converters import runtimes

    return runtimes._REGISTRY[name]


def measure(job: dict[str, Any], report: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Load, warm up and time one artifact here. Keys: ``error`` (``LOAD_FAILED``/``RUN_FAILED``, with
    ``reason``) or the samples with load time, memory and the runner's description. ``report(done, runs)``:
    progress of the timed runs (``time_round_trips``)."""
    runtime = _runtime(job)
    runtime.available()  # imports the backend now: load_ms and the RSS growth at load exclude its import
    rss = PeakRSS()
    if job.get("reset_peak", False):
        rss.reset()
    before = rss.current_mb()
    t0 = time.perf_counter_ns()
    try:
        runner = runtime.load(job["artifact_path"], job.get("manifest") or {}, job.get("threads"),
                              job.get("options") or None)
    except Exception as e:  # the runtime refused the artifact
        return {"error": "LOAD_FAILED", "reason": f"{type(e).__name__}: {e}"}
    load_ms = (time.perf_counter_ns() - t0) / 1e6
    after = rss.current_mb()
    try:
        x = runner.native_input(job["x"])
        with pinned(job.get("pin_cores")) as pin_note:
            warm_up(runner, x, job["warmup"])
            samples = time_round_trips(runner, x, job["runs"], report)
        runner.close()
        profile = _profile(runtime, job, x) if job.get("profile_dir") else None
    except Exception as e:
        if type(e).__name__ == "UsageError":
            raise
        return {"error": "RUN_FAILED", "reason": f"{type(e).__name__}: {e}"}
    return {"samples": samples, "load_ms": load_ms, "peak_rss_mb": rss.peak_mb(), "rss_before_load_mb": before,
            "rss_growth_at_load_mb": None if before is None or after is None else after - before,
            "runtime": runner.runtime or runtime.name, "runtime_version": str(runner.runtime_version or "unknown"),
            "compute_unit": runner.compute_unit, "threads": runner.threads, "pin_note": pin_note,
            "input_dtype": str(x.dtype), "input_shape": list(x.shape),
            "artifact_sha256": getattr(runner, "artifact_sha256", None),
            "weights_tag": getattr(runner, "weights_tag", None),
            "profile": profile,
            "pid": os.getpid(), "torch_imported": "torch" in sys.modules}


def _profile(runtime, job: dict[str, Any], x: np.ndarray) -> dict[str, Any]:
    """After the timed runs (never during them): a second runner with the runtime's per-layer profiler on,
    ``profile_runs`` round trips, the per-layer summary written to ``profile.<runtime>.json`` in
    ``profile_dir`` (beside the artifact). ``{"path": ...}`` or ``{"note": why there is none}``."""
    import json

    options = runtime.profile_options(job["profile_dir"])
    if options is None:
        return {"note": runtime.profile_note()}
    runner = runtime.load(job["artifact_path"], job.get("manifest") or {}, job.get("threads"),
                          {**(job.get("options") or {}), **options})
    runs = job.get("profile_runs", 20)
    warm_up(runner, x, 0)
    time_round_trips(runner, x, runs)
    runner.close()
    layers = runtime.read_profile(runner)
    Path(runner.profile_file).unlink(missing_ok=True)  # the summary is what is kept
    out = Path(job["profile_dir"]) / f"profile.{runtime.name}.json"
    out.write_text(json.dumps({"runtime": runtime.name, "runtime_version": runtime.version(),
                               "threads": job.get("threads"), "runs": runs + 1, "layers": layers}, indent=1))
    return {"path": str(out), "layers": len(layers)}


# ---------------------------------------------------------------- the worker process

def _child(conn, job: dict[str, Any]) -> None:
    def report(done: int, runs: int) -> None:
        conn.send(("runs", done, runs))

    try:
        out = measure(job, report if job.get("report_runs") else None)
    except BaseException as e:  # anything else still goes back as a reason
        out = {"error": "RUN_FAILED", "reason": f"{type(e).__name__}: {e}"}
    conn.send(out)
    conn.close()


def _death(code: int | None) -> str:
    if code is not None and code < 0:
        with contextlib.suppress(ValueError):
            return f"worker killed by {signal.Signals(-code).name}"
    return f"worker exited with code {code} before sending a result"


def run_in_worker(job: dict[str, Any], timeout_s: float,
                  report: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """``measure(job)`` in a fresh spawned process; a death or a hang is ``{"error": "RUN_FAILED", ...}``.
    ``report(done, runs)`` gets the worker's progress of the timed runs (sent between blocks of runs)."""
    import multiprocessing as mp

    job = {**job, "report_runs": report is not None}
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(child, job), name=f"mobexport-bench-{job['runtime']}", daemon=True)
    proc.start()
    child.close()
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            if not parent.poll(max(0.0, deadline - time.monotonic())):
                if proc.is_alive():
                    proc.kill()
                    proc.join(5)
                    return {"error": "RUN_FAILED",
                            "reason": f"worker hung: no result within {timeout_s:g} s, killed"}
                proc.join(5)
                return {"error": "RUN_FAILED", "reason": _death(proc.exitcode)}
            try:
                msg = parent.recv()
            except (EOFError, OSError):  # the pipe closed: the worker died before (or while) sending
                proc.join(5)
                return {"error": "RUN_FAILED", "reason": _death(proc.exitcode)}
            if not (isinstance(msg, tuple) and msg and msg[0] == "runs"):
                return msg
            if report is not None:
                report(msg[1], msg[2])
    finally:
        parent.close()
        proc.join(5)
        if proc.is_alive():
            proc.kill()
            proc.join()
