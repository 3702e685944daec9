"""Run the Neural Engine lint (converters/ane_lint.py) over every registered model's coreml-fp16 conversion and
write a markdown table (model, ops, flagged, top reasons) to results/ane_lint.md.

    python scripts/ane_lint_table.py [PATTERN ...] [--out results/ane_lint.md]

Random weights (the lint looks at op types, shapes and dtypes only). No Core ML runtime is needed.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path


def lint_model(name: str) -> dict:
    import torch

    from mobexport.api import create_model, get_spec, reparameterize
    from mobexport.converters import resolve_target
    from mobexport.converters.base import ExportState
    from mobexport.converters.coreml import CoreMLConverter

    spec = get_spec(name)
    model = reparameterize(create_model(name).eval()).eval()
    state = ExportState(model_name=name, target=resolve_target("coreml-fp16"), spec=spec, model=model,
                        example_input=torch.randn(1, *spec.input_size, generator=torch.Generator().manual_seed(0)))
    with tempfile.TemporaryDirectory() as d:
        CoreMLConverter().convert(state, Path(d) / f"{name}.mlpackage")
    return state.reports["ane_lint"]


def row(name: str, lint: dict) -> str:
    reasons = sorted(lint["reasons"].items(), key=lambda kv: -kv[1])
    top = ", ".join(f"{r} ×{n}" for r, n in reasons[:3]) or "—"
    first = lint["findings"][0] if lint["findings"] else None
    example = f"`{first['op_type']}` {first['layer'] or first['op_name']}" if first else ""
    return f"| {name} | {lint['ops_total']} | {lint['ops_flagged']} | {top} | {example} |"


def main(argv: list[str] | None = None) -> int:
    import torch

    from mobexport.api import list_models

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("patterns", nargs="*", default=["*"])
    p.add_argument("--out", default="results/ane_lint.md")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    names = sorted({n for pat in args.patterns for n in list_models(pat)})
    lines = ["# Neural Engine lint (static, coreml-fp16, jit.trace path)", "",
             "Heuristic rules and sources: `converters/ane_lint.py`. Real placement needs MLComputePlan on macOS.",
             "", "| model | ops | flagged | top reasons | first finding |", "|---|---|---|---|---|"]
    for name in names:
        t0 = time.perf_counter()
        try:
            lines.append(row(name, lint_model(name)))
        except Exception as e:  # one model failing to convert is itself a finding for the table
            lines.append(f"| {name} | – | – | conversion failed: {type(e).__name__}: {str(e)[:80]} | |")
        print(f"{name}: {time.perf_counter() - t0:.1f}s", file=sys.stderr)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
