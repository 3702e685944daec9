"""`make demo`: export → validate → benchmark → store → table → Pareto plot.

Exports mobileone_s1 and mnv4_conv_s (deterministic random weights with randomized BatchNorm, so validation
means something; every line, row and plot says "random weights (seed 0): latency is real, accuracy is not") and mobilenetv2_100 with its real weights when the assets are fetched, to every target whose
converter is available here; benchmarks each artifact min-of-1000 on this host (artifacts whose runtime is
missing, e.g. Core ML on Linux, are listed as SKIPPED with the reason) plus the PyTorch eager baseline;
stores everything in ./mobexport-results.db, prints the table and writes results/pareto.png.

    python scripts/demo.py [--runs 1000] [--targets onnx-fp32,tflite-fp32,...] [--out exports]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODELS = ("mobileone_s1", "mnv4_conv_s")
REAL = ("mobilenetv2_100",)


def plan() -> list[tuple[str, str | None]]:
    """(model, weights file or None) for the demo models registered here."""
    from mobexport.api import get_spec, list_models
    from mobexport.exporter import assets

    have = set(list_models())
    out: list[tuple[str, str | None]] = [(m, None) for m in MODELS if m in have]
    for m in REAL:
        spec = get_spec(m) if m in have else None
        if spec and spec.default_weights:
            try:
                out.append((m, str(assets.weights_path(spec.default_weights))))
            except Exception as e:  # assets not fetched: skip the real-weights model, say why
                print(f"skip {m} (real weights): {e}", file=sys.stderr)
    return out


def targets(targets_arg: str | None) -> list[str]:
    from mobexport.converters import all_targets, get_converter

    ids = [t.id for t in all_targets() if get_converter(t.format).is_available().ok]
    return [t for t in targets_arg.split(",")] if targets_arg else ids


def export_all(models, target_ids, out: Path) -> list[Path]:
    from mobexport.converters.pipeline import export
    from mobexport.exporter.errors import MobexportError
    from mobexport.exporter.source import random_weights_tag

    dirs = []
    for model, weights in models:
        print(f"{model}: {Path(weights).name if weights else random_weights_tag(0)}")
        for t in target_ids:
            t0 = time.perf_counter()
            opts = {} if weights else {"random_bn_seed": 0}
            try:
                r = export(model, t, weights=weights, out_dir=out, options=opts)
            except MobexportError as e:
                print(f"  {model:>16} → {t:<14} FAILED ({type(e).__name__}): {str(e).splitlines()[0][:150]}")
                continue
            print(f"  {model:>16} → {t:<14} {r.status.value:<22} {time.perf_counter() - t0:5.1f} s")
            dirs.append(r.manifest_path.parent)
    return dirs


def _quiet_backends() -> None:
    """The backends' progress bars and warnings drown the demo's own lines; mobexport's notices stay."""
    import logging
    import warnings

    os.environ.setdefault("TQDM_DISABLE", "1")
    os.environ.setdefault("LITERT_TORCH_SHOW_PROGRESS", "n")
    warnings.filterwarnings("ignore")
    for name in ("torch.onnx", "torch._export", "coremltools", "root"):
        logging.getLogger(name).setLevel(logging.ERROR)


def main() -> int:
    ap = argparse.ArgumentParser(description="mobexport demo")
    ap.add_argument("--runs", type=int, default=1000)
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--targets", help="comma-separated target ids (default: every available one)")
    ap.add_argument("--out", default=str(ROOT / "exports"))
    ap.add_argument("--db", default=str(ROOT / "mobexport-results.db"))
    a = ap.parse_args()
    os.environ.setdefault("MOBEXPORT_ASSETS", str(ROOT / ".cache" / "assets"))  # as `make demo` sets it
    _quiet_backends()
    from mobexport.benchmarks.harness import BenchConfig, run_benchmarks
    from mobexport.benchmarks.plots import pareto_plot
    from mobexport.benchmarks.store import open_store
    from mobexport.commands.bench import render

    t_start = time.perf_counter()
    models = plan()
    print(f"exporting {[m for m, _ in models]} to {targets(a.targets)}")
    dirs = export_all(models, targets(a.targets), Path(a.out))
    with open_store(a.db) as store:
        outcomes = run_benchmarks([str(d) for d in dirs], BenchConfig(runs=a.runs, warmup=a.warmup),
                                  torch_models=[m for m, w in models if w is None], store=store,
                                  progress=lambda s: print(s, file=sys.stderr))
        render(outcomes)
        rows = [s.to_dict() for s in store.query(harness="host")
                if s.result.model in {m for m, _ in models}]
    (ROOT / "results").mkdir(exist_ok=True)
    print(f"wrote {pareto_plot(rows, ROOT / 'results' / 'pareto.png', title='host: min latency vs top-1')}")
    print(f"demo took {time.perf_counter() - t_start:.0f} s; results in {a.db} (mobexport results --db {a.db})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
