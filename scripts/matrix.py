"""Full conversion matrix: every registered model × every target of every registered converter.

  python scripts/matrix.py [--models PATTERN] [--targets ID ...] [--out DIR]

Prints a markdown table (status, fidelity, size, time) and writes it to results/matrix.md. Random weights
with randomised BatchNorm statistics (seed 0) unless the assets hold the model's default weights.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("LITERT_TORCH_SHOW_PROGRESS", "n")
ROOT = Path(__file__).resolve().parents[1]


def _fidelity(r) -> str:
    m = r.fidelity.get("metrics", {})
    if not m:
        return "; ".join(r.fidelity.get("failures", [])) or r.fidelity.get("inputs", "")
    return (f"rel {m.get('max_abs', 0) / max(m.get('output_range', 1), 1e-12):.1e}, cos {m.get('cosine', 0):.5f}, "
            f"SQNR {m.get('sqnr_db', 0):.1f} dB, top-1 {m.get('top1_agreement', 0):.2f}")


def cell(model: str, target: str, out: str) -> list[str]:
    from mobexport.converters.pipeline import export
    from mobexport.exporter.errors import MobexportError

    sys.path.insert(0, str(ROOT / "scripts"))
    from bench_export import _weights

    w = _weights(model)
    t0 = time.perf_counter()
    try:
        r = export(model, target, weights=w, out_dir=out, options={"random_bn_seed": None if w else 0})
    except MobexportError as e:
        status = {3: "UNAVAILABLE", 4: "CONVERT_FAILED"}.get(e.exit_code, type(e).__name__)
        return [model, target, status, str(e).splitlines()[0][:100], "", f"{time.perf_counter() - t0:.1f}"]
    return [model, target, r.status.value, _fidelity(r), f"{r.manifest['size_bytes'] / 1e6:.2f}",
            f"{time.perf_counter() - t0:.1f}"]


def main(argv=None) -> int:
    import torch

    import mobexport
    from mobexport.converters import all_targets

    torch.set_num_threads(1)
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="*")
    ap.add_argument("--targets", nargs="+", default=[t.id for t in all_targets()])
    ap.add_argument("--out", default=str(ROOT / "results" / "matrix.md"))
    a = ap.parse_args(argv)
    lines = ["| model | target | status | fidelity | MB | s |", "|---|---|---|---|---|---|"]
    print("\n".join(lines), flush=True)
    with tempfile.TemporaryDirectory() as out:
        for model in mobexport.list_models(a.models):
            for target in a.targets:
                lines.append("| " + " | ".join(cell(model, target, out)) + " |")
                print(lines[-1], flush=True)
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text("# Conversion matrix\n\n" + "\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
