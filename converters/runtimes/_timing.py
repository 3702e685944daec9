"""The one timing loop of the code base: ``warm_up``, then ``time_round_trips`` on any ``Runner`` of the
runtime registry. ``benchmarks/worker.py`` (bench, the lookup tables, the overhead script) and any converter that
times an artifact at export use these and no loop of their own (``tests/test_runtimes.py`` checks). Imports only
``gc``, ``time`` and numpy: a timing worker imports this before its runtime."""

from __future__ import annotations

import gc
import time
from collections.abc import Callable

import numpy as np

__all__ = ["REPORT_EVERY_NS", "time_round_trips", "warm_up"]

REPORT_EVERY_NS = 100_000_000  # progress of the timed runs: at most one report per 100 ms


def time_round_trips(runner, x: np.ndarray, runs: int, report: Callable[[int, int], None] | None = None
                     ) -> list[float]:
    """``runs`` timed round trips (set input → invoke → read output), milliseconds, in run order.

    ``report(done, runs)`` (a progress bar) is called between blocks of runs, never inside a timed round trip:
    the runs go in blocks of ``runs // 200`` (at least 1), and after a block the clock is read once more and
    ``report`` called when 100 ms passed since the last report, and after the last run. Without ``report``
    there is one block."""
    pc, set_input, invoke, get_output = time.perf_counter_ns, runner.set_input, runner.invoke, runner.get_output
    ns = [0] * runs
    block = max(1, runs if report is None else runs // 200)
    last = pc()
    gc_was_on = gc.isenabled()
    gc.disable()
    try:
        for start in range(0, runs, block):
            for i in range(start, min(start + block, runs)):
                t0 = pc()
                set_input(x)
                invoke()
                get_output()
                ns[i] = pc() - t0
            if report is not None and ((now := pc()) - last >= REPORT_EVERY_NS or start + block >= runs):
                report(min(start + block, runs), runs)
                last = now
    finally:
        if gc_was_on:
            gc.enable()
    return [v / 1e6 for v in ns]


def warm_up(runner, x: np.ndarray, warmup: int) -> np.ndarray:
    """One checked run, then ``warmup`` more; returns the first output."""
    runner.set_input(x)
    runner.invoke()
    y = np.asarray(runner.get_output())
    if y.size == 0 or (y.dtype.kind == "f" and not np.isfinite(y).all()):
        raise RuntimeError(f"first run produced {'no' if y.size == 0 else 'non-finite'} output")
    for _ in range(warmup):
        runner.set_input(x)
        runner.invoke()
        runner.get_output()
    return y
