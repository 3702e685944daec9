"""``mobexport sweep [MODELS...] --to TARGETS|all [--bench] [--address auto|ray://HOST:PORT] [--db URL]
[--artifacts DIR|URL] [--resume] [--retries N] [--table results/matrix.md] [--json]``.

The models × targets sweep on Ray: each cell is one Ray task (``benchmarks/sweep.py``); without ``--address`` Ray
starts on this machine. One line per finished cell with the counts of cells done, running and failed.
Exit codes: 0 every cell recorded (an export that failed is a recorded cell, as in the matrix), 2 usage error
(a SQLite database for a multi-node cluster, no cluster at --address, ...), 4 a cell's worker died on every
attempt (recorded ``failed`` with the reason).
"""

from __future__ import annotations

import argparse

from ._common import notice, print_json


def add_parser(name: str, p: argparse.ArgumentParser) -> None:
    p.add_argument("patterns", nargs="*", metavar="MODEL",
                   help="zoo names or fnmatch patterns (mobileone*) or path/to/file.py:factory; default every model")
    p.add_argument("--to", default="onnx-fp32", metavar="TARGETS|all",
                   help="comma-separated target ids or format names, or 'all' (every target this host can build); "
                        "default onnx-fp32")
    p.add_argument("--bench", action="store_true",
                   help="also time each artifact (after the exports; at most one bench per node, alone on it)")
    p.add_argument("--runs", type=int, default=100, help="timed round trips per artifact with --bench (default 100)")
    p.add_argument("--warmup", type=int, default=10, help="warm-up runs with --bench (default 10)")
    p.add_argument("--address", metavar="auto|ray://HOST:PORT",
                   help="Ray cluster to run on: 'auto' (the one started here with 'ray start'), a head's "
                        "HOST:PORT or ray://HOST:PORT; default: a local cluster in this process")
    p.add_argument("--num-cpus", type=int, metavar="N", help="CPUs of the local cluster (default: all of them)")
    p.add_argument("--db", help="results and cell states (default ./mobexport-results.db; a multi-node cluster "
                                "needs postgresql://USER@HOST:PORT/DB)")
    p.add_argument("--artifacts", default="exports", metavar="DIR|URL",
                   help="where artifacts go: a folder the nodes share (default exports) or an fsspec URL")
    p.add_argument("--resume", action="store_true",
                   help="skip cells already done with the same inputs (model, weights sha256, target, options, "
                        "tool versions)")
    p.add_argument("--retries", type=int, default=2, metavar="N",
                   help="times a cell whose worker died is retried before it is recorded failed (default 2)")
    p.add_argument("--table", metavar="FILE.md",
                   help="merge the exported cells into FILE.jsonl and render FILE.md (make matrix: "
                        "results/matrix.md)")
    p.add_argument("--json", action="store_true", help="print the summary and every cell as JSON")


def _models(patterns: list[str]) -> list[str]:
    """Canonical names for zoo names, aliases and fnmatch patterns (``mobileone*``), in zoo order, once each;
    factory references as given. A name no model has is a UsageError with did-you-mean."""
    import fnmatch

    from mobexport.exporter.errors import UsageError
    from mobexport.exporter.registry import check_name, name_index
    from mobexport.exporter.source import is_factory_ref

    index = name_index()
    if index is None:
        import mobexport

        index = {n: n for n in mobexport.list_models()}
    names = list(dict.fromkeys(index.values()))
    out: list[str] = []
    for p in patterns or ["*"]:
        if is_factory_ref(p):
            hits = [p]
        elif any(ch in p for ch in "*?["):
            hits = [n for n in names if fnmatch.fnmatch(n, p)]
        else:
            check_name(p)
            hits = [index.get(p, p)]
        if not hits:
            raise UsageError(f"no model matches '{p}'", hint="see 'mobexport list'")
        out += [h for h in hits if h not in out]
    return out


def run(args) -> int:
    import contextlib
    import sys
    from pathlib import Path

    from mobexport.benchmarks import sweep
    from mobexport.benchmarks.export_all import select_targets
    from mobexport.converters import all_targets
    from mobexport.exporter.errors import UsageError

    if args.retries < 0:
        raise UsageError("--retries must be 0 or more")
    bench = sweep.BenchSpec(runs=args.runs, warmup=args.warmup) if args.bench else None
    # Ray's driver prints cluster notices (a worker that died) to stdout: they go to stderr, stdout stays the
    # summary (JSON with --json)
    with contextlib.redirect_stdout(sys.stderr):
        summary = sweep.sweep(_models(args.patterns), select_targets(args.to), address=args.address, db=args.db,
                              artifacts=args.artifacts, resume=args.resume, bench=bench, retries=args.retries,
                              num_cpus=args.num_cpus, progress=notice)
    if args.table:
        sweep.update_matrix(Path(args.table), summary.cells, [t.id for t in all_targets()])
    if args.json:
        print_json(summary.to_json())
    else:
        _render(summary)
    return 4 if summary.failed else 0


def _render(summary) -> None:
    from collections import Counter

    from ._common import console

    states = Counter(c["state"] for c in summary.cells)
    statuses = Counter(c["status"] for c in summary.cells if c["state"] == "done")
    con = console()
    con.print(f"sweep {summary.sweep[:8]}: {len(summary.cells)} cells on {summary.nodes} node"
              f"{'s' * (summary.nodes != 1)} in {summary.seconds:.0f} s; {summary.skipped} skipped (done before); "
              + ", ".join(f"{n} {s}" for s, n in sorted(states.items())) + "; statuses: "
              + ", ".join(f"{n} {s}" for s, n in sorted(statuses.items())))
    for c in summary.failed:
        con.print(f"  FAILED {c['model']} {c['target']}: {c['reason']}")
