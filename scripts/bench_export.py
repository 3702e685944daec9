"""Export benchmarks (run by hand; nothing here is a test).

  python scripts/bench_export.py simplifiers [MODEL ...]   onnxslim vs onnxsim: nodes and time per model
  python scripts/bench_export.py zoo [--targets ...]       time the whole zoo → onnx-fp32, tflite-fp32, tflite-w8a8
                                                           (runs scripts/matrix.py on those targets: one
                                                           recorded table, results/matrix.md, with a per-target
                                                           export-time summary)

Random weights with BatchNorm statistics randomised (seed 0) unless a model has weights under the assets.
Prints markdown tables.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

os.environ.setdefault("LITERT_TORCH_SHOW_PROGRESS", "n")


def simplifiers(models: list[str]) -> None:
    import onnx
    import torch

    from mobexport.api import create_model, reparameterize
    from mobexport.converters.onnx import OPSET, node_counts, simplify

    print("| model | exported nodes | onnxslim nodes | onnxslim s | onnxsim nodes | onnxsim s |")
    print("|---|---|---|---|---|---|")
    for name in models:
        m = reparameterize(create_model(name)).eval()
        x = torch.randn(1, *m_spec(name).input_size)
        with tempfile.TemporaryDirectory() as d:
            p = os.path.join(d, "m.onnx")
            torch.onnx.export(m, (x,), p, dynamo=True, opset_version=OPSET, external_data=False,
                              input_names=["input"], output_names=["logits"])
            base = onnx.load(p)
        row = [name, str(sum(node_counts(base).values()))]
        for s in ("onnxslim", "onnxsim"):
            t0 = time.perf_counter()
            out = simplify(onnx.load_from_string(base.SerializeToString()), s)
            row += [str(sum(node_counts(out).values())), f"{time.perf_counter() - t0:.2f}"]
        print("| " + " | ".join(row) + " |", flush=True)


def m_spec(name):
    from mobexport.api import get_spec

    return get_spec(name)


def zoo(targets: list[str], models: list[str]) -> None:
    import matrix  # this folder

    patterns = models or ["*"]
    for pattern in patterns:
        matrix.main(["--models", pattern, "--targets", *targets])
    print((matrix.TABLE).read_text())


def main(argv=None) -> int:
    import torch

    torch.set_num_threads(1)
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=["simplifiers", "zoo"])
    ap.add_argument("models", nargs="*")
    ap.add_argument("--targets", nargs="+", default=["onnx-fp32", "tflite-fp32", "tflite-w8a8"])
    a = ap.parse_args(argv)
    if a.what == "simplifiers":
        simplifiers(a.models or ["mobileone_s0", "mobilenetv3_small_100", "mnv4_hybrid_m", "mobilevitv3_xxs"])
    else:
        zoo(a.targets, a.models)
    return 0


if __name__ == "__main__":
    sys.exit(main())
