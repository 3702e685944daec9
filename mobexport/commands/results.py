"""``mobexport results [--db URL] [--model PATTERN] [--target T] [--harness H] [--json] [--plot FILE.png]
[--samples ID]``: stored results as a table (min latency as the headline), JSON, a Pareto plot, or the raw
samples of one result."""

from __future__ import annotations

import argparse

from ._common import console, notice, print_json


def add_parser(name: str, p: argparse.ArgumentParser) -> None:
    p.add_argument("--db", help="results database: file path, sqlite:///FILE or postgresql://… "
                                "(default ./mobexport-results.db)")
    p.add_argument("--model", help="shell-style model pattern, e.g. 'mobileone*'")
    p.add_argument("--target", help="target id, e.g. onnx-fp32")
    p.add_argument("--harness", choices=("host", "ios_app", "android_app"))
    p.add_argument("--limit", type=int, help="at most N results")
    p.add_argument("--json", action="store_true", help="machine-readable output (records without raw samples)")
    p.add_argument("--plot", metavar="FILE.png", help="write a latency-vs-top-1 Pareto plot per target "
                                                      "(with --samples: the raw-sample distribution)")
    p.add_argument("--y", choices=("top1", "params", "macs"), default="top1",
                   help="y axis of the Pareto plot: measured (or published) top-1, params or MACs")
    p.add_argument("--samples", type=int, metavar="ID", help="show the raw samples of result ID")


def run(args) -> int:
    from mobexport.benchmarks.store import open_store

    # A reader: a mistyped --db is an error, not a new empty file; nothing is migrated or written, so a database
    # on a read-only disk (or a file and folder without write permission) is read as it is.
    with open_store(args.db, create=False, read_only=True) as store:
        if args.samples is not None:
            return _samples(store, args)
        rows = [s.to_dict() for s in store.query(model=args.model, target=args.target, harness=args.harness,
                                                 limit=args.limit)]
        accuracy = _join_accuracy(store, rows, args)
        _join_artifacts(store, rows)
    if args.plot:
        from mobexport.benchmarks.plots import pareto_plot

        notice(f"wrote {pareto_plot(rows, args.plot, y=args.y)}")
    if args.json:
        print_json(rows)
    else:
        render_table(rows)
        if accuracy:
            from .eval import render

            render(accuracy)
    return 0


def _join_accuracy(store, rows: list[dict], args) -> list[dict]:
    """Each latency row gets ``accuracy``: the latest evaluated accuracy record of the same artifact (sha256) or
    None. Returns the accuracy records matching the filters (shown as their own table)."""
    from mobexport.benchmarks.store.accuracy import accuracy_records, latest_accuracy

    latest = latest_accuracy(store, [r["artifact_sha256"] for r in rows])
    for r in rows:
        r["accuracy"] = latest.get(r["artifact_sha256"])
    return accuracy_records(store, model=args.model, target=args.target, limit=args.limit)


def _join_artifacts(store, rows: list[dict]) -> None:
    """Each latency row gets ``artifact``: what the export of its artifact (by sha256) recorded — size, weights,
    validation status, fidelity — or None (a baseline, or an artifact timed before the store kept them)."""
    from mobexport.benchmarks.store.artifacts import artifact_info

    info = artifact_info(store, [r["artifact_sha256"] for r in rows])
    for r in rows:
        a = info.get(r["artifact_sha256"])
        r["artifact"] = None if a is None else {k: a[k] for k in ("size_bytes", "status", "fidelity", "metrics")}


def _samples(store, args) -> int:
    stored = store.get(args.samples)
    r = stored.result
    if args.plot:
        from mobexport.benchmarks.plots import samples_plot

        notice(f"wrote {samples_plot({f'#{stored.id} {r.model} {r.target}': r.samples_ms}, args.plot)}")
    if args.json:
        print_json({"id": stored.id, "model": r.model, "target": r.target, "runs": r.runs,
                    "min_ms": r.min_ms, "samples_ms": r.samples_ms})
    else:
        console().print(f"#{stored.id} {r.model} {r.target} {r.runtime} on {r.device_model}: {r.runs} runs, "
                        f"min {r.min_ms:.4f} ms, p50 {r.p50_ms:.4f}, p90 {r.p90_ms:.4f}, max {r.max_ms:.4f}")
        console().print(" ".join(f"{x:.4f}" for x in r.samples_ms))
    return 0


COLUMNS = (("id", "right"), ("model", "left"), ("weights", "left"), ("target", "left"), ("harness", "left"),
           ("device", "left"), ("runtime", "left"), ("unit", "left"), ("thr", "right"), ("runs", "right"),
           ("min ms", "right"), ("p50", "right"), ("p90", "right"), ("load ms", "right"), ("RSS MB", "right"),
           ("size MB", "right"), ("fidelity", "left"), ("status", "left"), ("top-1 % (data)", "left"))


def render_table(rows: list[dict], title: str | None = None) -> None:
    cells = []
    for r in rows:
        art = r.get("artifact") or {}
        cells.append((str(r.get("id", "")), r["model"], weights_cell(r["weights"]), r["target"], r["harness"],
                      r["device_model"], f"{r['runtime']} {r['runtime_version']}", r["compute_unit"],
                      _opt(r.get("threads")), str(r["runs"]), f"{r['min_ms']:.3f}", f"{r['p50_ms']:.3f}",
                      f"{r['p90_ms']:.3f}", _opt(r.get("load_ms"), ".1f"), _opt(r.get("peak_rss_mb"), ".0f"),
                      _opt(art.get("size_bytes") and art["size_bytes"] / 1e6, ".2f"), art.get("fidelity") or "-",
                      r["validation_status"], _top1(r.get("accuracy"))))
    print_table(title or f"{len(rows)} results (min of N round trips, ms)", COLUMNS, cells, keep=("id", "model"),
                whole=("model", "status"), bold="min ms")


def weights_cell(tag: str) -> str:
    """``random (seed 0)`` for deterministic random weights (the full tag says latency is real, accuracy is
    not: too long for a cell), else the checkpoint tag (file name and sha256 prefix)."""
    from mobexport.exporter.source import is_random_tag

    if is_random_tag(tag):
        return tag.split(":", 1)[0].replace("random weights", "random")
    return tag


def print_table(title: str, columns, rows: list[tuple[str, ...]], *, keep=(), whole=(), bold: str | None = None,
                console=None) -> None:
    """A rich table of ``columns`` ((name, justify), ...) fitted to the terminal: cells fold (never cut) and the
    ``whole`` columns (model names, statuses) are at least as wide as their longest cell; when even that does not
    fit, the columns are split over several tables, each repeating the ``keep`` columns. Piped (``wide_console``),
    one table at its natural width."""
    console = console or wide_console()
    names = [c[0] for c in columns]
    longest = {n: max((len(r[names.index(n)]) for r in rows), default=0) for n in whole}
    groups: list[list[int]] = []
    for i, name in enumerate(names):
        if name in keep:
            continue
        group = [names.index(k) for k in keep] + [i]
        if groups and _min_width(console, _table("", columns, rows, groups[-1] + [i], longest, bold)) \
                <= console.width:
            groups[-1].append(i)
        else:
            groups.append(group)
    for n, group in enumerate(groups or [list(range(len(names)))]):
        console.print(_table(title if n == 0 else "", columns, rows, group, longest, bold))


def _table(title: str, columns, rows, group: list[int], longest: dict[str, int], bold: str | None):
    from rich.table import Table

    t = Table(title=title or None)
    for i in group:
        name, just = columns[i]
        t.add_column(name, justify=just, overflow="fold", min_width=longest.get(name) or None,
                     style="bold" if name == bold else None)
    for r in rows:
        t.add_row(*(r[i] for i in group))
    return t


def _min_width(console, table) -> int:
    from rich.measure import Measurement

    return Measurement.get(console, console.options.update(max_width=1_000_000), table).minimum


def wide_console():
    """Tables fit the terminal's width (folding long cells, never cutting them); piped or to a file they print
    whole, at their natural width."""
    import sys

    from rich.console import Console

    return Console(highlight=False, width=None if sys.stdout.isatty() else 100_000)


def _top1(acc: dict | None) -> str:
    """The artifact's measured top-1 and the dataset it was measured on (name, images, fingerprint)."""
    if not acc or acc.get("artifact_top1") is None:
        return "-"
    from pathlib import PurePath

    name = PurePath(acc["dataset_path"]).name
    return f"{100 * acc['artifact_top1']:.1f} ({name}, n={acc['n_images']}, {acc['dataset_fingerprint'][:8]})"


def _opt(v, fmt: str = "") -> str:
    return "-" if v is None else format(v, fmt)
