"""``mobexport eval ARTIFACT... --data DIR|FILE.csv [--db URL] [--no-store] [--weights FILE] [--labels FILE]
[--limit N] [--json]``: top-1 / top-5 of each artifact and of its float PyTorch model on a labelled folder or
CSV, with Wilson 95% intervals, stored in the results database next to latency (linked by artifact sha256).

Exit codes: 0 evaluated (or not evaluable here: ``UNVALIDATED_NO_RUNTIME``), 1 an artifact failed to load or run,
2 bad input (nothing stored)."""

from __future__ import annotations

import argparse
import sys

from ._common import console, notice, print_json


def add_parser(name: str, p: argparse.ArgumentParser) -> None:
    p.add_argument("artifacts", nargs="+", metavar="ARTIFACT",
                   help="export folder OUT/<model>/<target>/ (or the artifact file in it) with its manifest.json")
    p.add_argument("--data", required=True, metavar="DIR|FILE.csv",
                   help="labelled images: one subfolder per class (names matched to the model's labels, or "
                        "integer class indices), or a CSV of path,label rows")
    p.add_argument("--db", help="results database: file path, sqlite:///FILE or postgresql://… "
                                "(default ./mobexport-results.db)")
    p.add_argument("--no-store", action="store_true", help="do not write the results database")
    p.add_argument("--weights", metavar="FILE", help="float model weights instead of the manifest's weights file "
                                                     "(checked against its sha256 when recorded)")
    p.add_argument("--labels", metavar="FILE", help="class names, one per line in index order, for artifacts "
                                                    "whose manifest has none")
    p.add_argument("--limit", type=int, metavar="N", help="evaluate N images (a stable subset)")
    p.add_argument("--json", action="store_true", help="machine-readable output")


def _read_labels(path: str | None) -> list[str] | None:
    from mobexport.exporter.errors import UsageError

    if path is None:
        return None
    try:
        names = [ln.strip() for ln in open(path, encoding="utf-8").read().splitlines()]
    except OSError as e:
        raise UsageError(f"cannot read --labels {path}: {e.strerror or e}") from None
    names = [n for n in names if n]
    if not names:
        raise UsageError(f"--labels {path} has no class names")
    return names


class _Progress:
    """A rich bar per artifact on a terminal; one plain line per artifact (on stderr) when piped."""

    def __init__(self):
        self.tty = sys.stderr.isatty()
        self.bar = self.task = None

    def __call__(self, name: str, done: int, total: int) -> None:
        if not self.tty:
            if done == total:
                notice(f"eval {name}: {total} images")
            return
        from rich.progress import Progress

        if self.bar is None:
            self.bar = Progress(console=console(stderr=True), transient=True)
            self.bar.start()
        if done == 0:
            self.task = self.bar.add_task(f"eval {name}", total=total)
        self.bar.update(self.task, completed=done)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


def run(args) -> int:
    from mobexport.benchmarks.evaluate import evaluate

    progress = _Progress()
    try:
        records = evaluate(args.artifacts, args.data, db=args.db, save=not args.no_store, weights=args.weights,
                           limit=args.limit, labels=_read_labels(args.labels), progress=progress)
    finally:
        progress.close()
    if args.json:
        print_json(records)
    else:
        render(records)
    return 1 if any(r["status"] in ("LOAD_FAILED", "RUN_FAILED") for r in records) else 0


def _pct(r: dict, key: str) -> str:
    v = r.get(key)
    if v is None:
        return "-"
    return f"{100 * v:.1f} [{100 * r[key + '_lo']:.1f}, {100 * r[key + '_hi']:.1f}]"


def render(records: list[dict]) -> None:
    from pathlib import PurePath

    from rich.table import Table

    from mobexport.benchmarks.evaluate import CI_METHOD

    t = Table(title=f"accuracy, % [{CI_METHOD}]")
    for col in ("id", "model", "target", "data", "images", "status", "top-1", "top-5", "float top-1",
                "float top-5", "agreement"):
        t.add_column(col, justify="left" if col in ("model", "target", "data", "status") else "right")
    for r in records:
        agree = "-" if r.get("agreement") is None else f"{100 * r['agreement']:.1f}"
        data = f"{PurePath(r['dataset_path']).name} {r['dataset_fingerprint'][:8]}"
        t.add_row(str(r.get("id", "-")), r["model"], r["target"], data, str(r["n_images"]), r["status"],
                  _pct(r, "artifact_top1"), _pct(r, "artifact_top5"), _pct(r, "float_top1"),
                  _pct(r, "float_top5"), agree)
    from .results import wide_console

    out = wide_console()
    out.print(t)
    for r in records:
        if r.get("notes"):
            out.print(f"{r['model']}/{r['target']}: {r['notes']}")
    for path, fp in sorted({(r["dataset_path"], r["dataset_fingerprint"][:8]) for r in records}):
        out.print(f"data {fp}: {path}")
