"""How far an int8 artifact's top-1 agreement with float can be trusted: a benchmark, not a test.

The validator judges int8 on the held-out photos, one centre crop each: with a few dozen photos one float
near-tie flipping moves the figure by a few points. This script re-measures each artifact on every held-out
photo x 5 crops (centre + 4 corners of the resized image) x {as is, mirrored}, still never a calibration
photo, and prints agreement with a 95% Wilson interval next to the validator's figure, plus logit SQNR. Real
weights from `make assets`. The table is also written to results/int8_agreement.md (or --out), with the
command, date and host that produced it.

  python scripts/int8_agreement.py                       # MobileNetV2 + EfficientNet-Lite0, tflite/tensorrt w8a8
  python scripts/int8_agreement.py --models mobilenetv2_100 --targets tflite-w8a8 --range-search
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import shlex
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

DEFAULT_MODELS = ("mobilenetv2_100", "efficientnet_lite0")
DEFAULT_TARGETS = ("tflite-w8a8", "tensorrt-w8a8")
RESULTS_MD = Path(__file__).resolve().parents[1] / "results" / "int8_agreement.md"


def crops(path: Path, spec) -> list[np.ndarray]:
    """The 5 crops x 2 mirrors of one photo, preprocessed like the model's spec (NCHW float32); the first is
    exactly what the validator sees."""
    from mobexport.exporter.preprocess import crop_boxes, open_image, resize_shorter, to_input

    pp = spec.preprocessing
    img = resize_shorter(open_image(path), pp)
    out = []
    for box in crop_boxes(img, pp, corners=True):
        x = to_input(img.crop(box), pp)
        out += [x, np.ascontiguousarray(x[..., ::-1])]
    return out


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    p = k / n
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return c - h, c + h


def main(argv=None) -> int:
    import torch

    from mobexport.api import create_model, get_spec, reparameterize
    from mobexport.benchmarks.sweep import default_weights
    from mobexport.converters import get_converter, resolve_target
    from mobexport.converters.base import Artifact
    from mobexport.converters.pipeline import export
    from mobexport.quantization.calibration import image_sets

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=list(DEFAULT_MODELS))
    ap.add_argument("--targets", nargs="+", default=list(DEFAULT_TARGETS))
    ap.add_argument("--range-search", action="store_true", help="also export with --range-search and compare")
    ap.add_argument("--out", type=Path, default=RESULTS_MD, help="markdown file the table is written to "
                    "(default: results/int8_agreement.md)")
    args = ap.parse_args(argv)
    command = "python scripts/int8_agreement.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    torch.set_num_threads(1)
    rows, counts = [], set()
    for model in args.models:
        weights = default_weights(model)
        if weights is None:
            print(f"{model}: no real weights in the assets (run `make assets`)", file=sys.stderr)
            return 2
        spec = get_spec(model)
        photos = image_sets(spec).holdout_files
        xs = [x for f in photos for x in crops(Path(f), spec)]
        counts.add((len(photos), len(xs)))
        net = reparameterize(create_model(model, weights=weights)).eval()
        with torch.no_grad():
            ref = np.concatenate([net(torch.from_numpy(x)).numpy().reshape(1, -1) for x in xs])
        for target in args.targets:
            for search in ((False, True) if args.range_search else (False,)):
                with tempfile.TemporaryDirectory() as tmp:
                    r = export(model, target, weights=weights, out_dir=tmp, options={"range_search": search})
                    runner = get_converter(resolve_target(target).format).load(Artifact(target, Path(r.artifact)))
                    out = np.concatenate([np.asarray(runner.run(x), np.float32).reshape(1, -1) for x in xs])
                k = int((out.argmax(1) == ref.argmax(1)).sum())
                lo, hi = wilson(k, len(xs))
                sqnr = 10 * np.log10((ref ** 2).sum() / ((ref - out) ** 2).sum())
                m = r.fidelity["metrics"]
                rows.append(f"| {model} | {target}{' --range-search' if search else ''} | "
                            f"{m['top1_agreement']:.3f} ({m['sqnr_db']:.1f} dB) | {k}/{len(xs)} = {k / len(xs):.3f} "
                            f"[{lo:.3f}, {hi:.3f}] | {sqnr:.1f} |")
                print(rows[-1], flush=True)
    n_photos, n_crops = (" / ".join(str(n) for n in sorted({c[i] for c in counts})) for i in (0, 1))
    table = (f"| model | target | {n_photos} held-out photos: top-1 agreement (SQNR) | {n_crops} held-out crops: "
             f"agreement [95% CI] | {n_crops} crops: SQNR dB |\n|---|---|---|---|---|\n" + "\n".join(rows) + "\n")
    print("\n" + table, end="")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        "# int8 top-1 agreement with float on the held-out photos (generated by scripts/int8_agreement.py)\n\n"
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {platform.machine()} {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}, torch 1 thread. Command: `{command.strip()}`\n\n" + table)
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
