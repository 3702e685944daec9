"""``mobexport bench ARTIFACT... [--torch MODEL] [--runs 1000] [--warmup N] [--threads N] [--batch N]
[--pin-cores LIST] [--cooldown S] [--runtime NAME] [--in-process] [--timeout S] [--profile] [--db URL] [--no-store]
[--json] [--post URL --token T]``.

Times exported artifacts on this host (min of N round trips as the headline), each in a fresh worker process
that imports only its runtime, stores every result with its raw samples, and optionally posts it to a
``mobexport serve`` instance. A worker that dies or hangs is RUN_FAILED with the reason; the others still run. Exit codes: 0 every artifact timed or
skipped because its runtime is missing here, 3 nothing could be timed, 4 an artifact failed to load or run.
"""

from __future__ import annotations

import argparse
import contextlib
import os

from ._common import notice, print_json


def add_parser(name: str, p: argparse.ArgumentParser) -> None:
    p.add_argument("artifacts", nargs="*", metavar="ARTIFACT",
                   help="export folder (exports/<model>/<target>), artifact file, or a folder of exports")
    p.add_argument("--torch", action="append", default=[], metavar="MODEL",
                   help="also time MODEL's deploy form in PyTorch eager mode (target torch-fp32); repeatable")
    p.add_argument("--runs", type=int, default=1000, help="timed round trips (default 1000)")
    p.add_argument("--warmup", type=int, default=20, help="warm-up runs after the first (default 20)")
    p.add_argument("--threads", type=int, default=1, help="intra-op threads, the same for every runtime (default 1)")
    p.add_argument("--batch", type=int, default=1, help="batch size (the artifact must accept it)")
    p.add_argument("--pin-cores", help="comma-separated CPU ids to pin the process to, e.g. 0 or 0,1")
    p.add_argument("--cooldown", type=float, default=0.0, metavar="S", help="seconds of rest between models")
    p.add_argument("--runtime", metavar="NAME",
                   help="the registered runtime to run the artifacts with (default: each format's first runtime)")
    p.add_argument("--in-process", action="store_true",
                   help="time in this process instead of a fresh worker per artifact (memory is then the process')")
    p.add_argument("--timeout", type=float, default=1800.0, metavar="S",
                   help="seconds a worker may take before it is killed and the artifact is RUN_FAILED")
    p.add_argument("--profile", action="store_true",
                   help="after timing, write a per-layer profile (profile.<runtime>.json) beside each artifact "
                        "where its runtime has a profiler (onnxruntime)")
    p.add_argument("--db", help="results database (default ./mobexport-results.db)")
    p.add_argument("--no-store", action="store_true", help="do not write the results database")
    p.add_argument("--post", metavar="URL", help="also POST each result to a mobexport server")
    p.add_argument("--token", default=os.environ.get("MOBEXPORT_TOKEN"),
                   help="bearer token for --post (default: $MOBEXPORT_TOKEN)")
    p.add_argument("--json", action="store_true", help="machine-readable output")


def _cores(text: str | None) -> list[int] | None:
    from mobexport.exporter.errors import UsageError

    if not text:
        return None
    try:
        return [int(c) for c in text.split(",") if c.strip()]
    except ValueError:
        raise UsageError(f"--pin-cores expects comma-separated CPU ids, got '{text}'") from None


def run(args) -> int:
    from mobexport.benchmarks.harness import BenchConfig, run_benchmarks
    from mobexport.exporter.errors import UsageError
    from mobexport.exporter.status import Status

    if not args.artifacts and not args.torch:
        raise UsageError("nothing to bench: pass export folders/artifacts and/or --torch MODEL")
    cfg = BenchConfig(runs=args.runs, warmup=args.warmup, threads=args.threads, batch=args.batch,
                      pin_cores=_cores(args.pin_cores), cooldown_s=args.cooldown,
                      runtime=args.runtime, in_process=args.in_process, timeout_s=args.timeout,
                      profile=args.profile)
    cfg.check()
    if args.post:  # a wrong token or a dead server is found now, not after every artifact was timed
        from mobexport.benchmarks.server import check_server

        check_server(args.post, token=args.token)
    store = None
    if not args.no_store:
        from mobexport.benchmarks.store import open_store

        store = open_store(args.db)
    from .live import LiveSteps, live_terminal

    # on a terminal a live display with a bar over the timed runs; piped one line as each artifact starts
    live = LiveSteps() if live_terminal() and not args.json else None
    try:
        with live or contextlib.nullcontext():
            outcomes = run_benchmarks(args.artifacts, cfg, torch_models=args.torch, store=store, post_url=args.post,
                                      token=args.token, progress=None if args.json else (live or notice),
                                      report=live.runs if live else None)
    finally:
        if store is not None:
            store.close()
    if args.json:
        print_json([o.to_json() for o in outcomes])
    else:
        render(outcomes)
    for o in outcomes:
        if o.bench_status is not Status.OK:
            notice(f"{o.bench_status.value}: {o.model}/{o.target}: {o.reason}")
    if any(o.bench_status in (Status.LOAD_FAILED, Status.RUN_FAILED) for o in outcomes):
        return 4
    return 0 if any(o.bench_status is Status.OK for o in outcomes) else 3


def render(outcomes) -> None:
    from .results import print_table, wide_console

    columns = [(c, "right" if c in ("id", "thr", "runs") or c.endswith(("ms", "MB")) or c in ("p50", "p90", "max")
                else "left") for c in ("id", "model", "target", "runtime", "thr", "runs", "min ms", "p50", "p90",
                                       "max", "load ms", "RSS MB", "status")]
    rows = []
    for o in outcomes:
        r = o.result
        if r is None:
            rows.append(("-", o.model, o.target, "-", "-", "0", "-", "-", "-", "-", "-", "-",
                         f"{o.bench_status.value}: {o.reason[:70]}"))
            continue
        rows.append((str(o.id or "-"), r.model, r.target, f"{r.runtime} {r.runtime_version}", str(r.threads or "-"),
                     str(r.runs), f"{r.min_ms:.3f}", f"{r.p50_ms:.3f}", f"{r.p90_ms:.3f}", f"{r.max_ms:.2f}",
                     f"{r.load_ms:.0f}", f"{r.peak_rss_mb:.0f}", f"validation {r.validation_status}"))
    # model names and statuses never cut; on a narrow terminal the columns split over several tables
    print_table("host benchmark (min of N round trips, ms)", columns, rows, keep=("model",), whole=("model",),
                bold="min ms", console=wide_console())
    from mobexport.exporter.source import is_random_tag

    random = sorted({(o.result.model, o.result.weights) for o in outcomes
                     if o.result is not None and is_random_tag(o.result.weights)})
    for model, tag in random:
        wide_console().print(f"note: {model}: {tag}")
