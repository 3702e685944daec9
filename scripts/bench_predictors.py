"""Benchmark (not a test): latency predictors vs measurements over the zoo on this host.

For each model: measured min-of-N latency of the whole deploy model converted to the target (default onnx-fp32)
by its converter and timed on the runtime (default onnxruntime, 1 thread) exactly as the LUT's blocks are
(``lut.time_model``), the roofline bound at this host's measured peaks (fp32), the per-block LUT prediction
(blocks converted and timed alone the same way), MACs and params. Then RMSE and Spearman rank correlation of
each predictor vs measured.

    python scripts/bench_predictors.py [--models PATTERN,...] [--runs 200] [--runtime NAME] [--target T]
                                       [--out results/predictors.md]
"""

from __future__ import annotations

import argparse
import math
import platform
import sys
import time
from pathlib import Path

import torch

import mobexport
from mobexport.benchmarks.analysis import hostcal, lut, roofline
from mobexport.exporter.profile import count_params

DEFAULT = ("mobileone_s*,mobileone_mu*,repvgg_a0,repvgg_a1,repvgg_b0,mnv4_conv_s,mnv4_conv_m,mnv4_hybrid_m,moga_*,"
           "mobilevitv3_xxs,mobilevitv3_xs,mobilevitv3_0_5,mobilevitv3_0_75,mobilenetv2_100,mobilenetv3_*,"
           "efficientnet_lite*")


def ranks(xs):
    order = sorted(range(len(xs)), key=lambda i: xs[i])
    r = [0.0] * len(xs)
    i = 0
    while i < len(order):  # average ranks for ties
        j = i
        while j + 1 < len(order) and xs[order[j + 1]] == xs[order[i]]:
            j += 1
        for k in range(i, j + 1):
            r[order[k]] = (i + j) / 2
        i = j + 1
    return r


def spearman(a, b) -> float:
    ra, rb = ranks(a), ranks(b)
    ma, mb = sum(ra) / len(ra), sum(rb) / len(rb)
    cov = sum((x - ma) * (y - mb) for x, y in zip(ra, rb, strict=True))
    va = math.sqrt(sum((x - ma) ** 2 for x in ra))
    vb = math.sqrt(sum((y - mb) ** 2 for y in rb))
    return cov / (va * vb) if va and vb else float("nan")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--models", default=DEFAULT)
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--lut-runs", type=int, default=100)
    ap.add_argument("--out", default="results/predictors.md")
    ap.add_argument("--lut-file", default="results/lut_onnxruntime_1t.json")
    ap.add_argument("--runtime", default="onnxruntime")
    ap.add_argument("--target", default=None, help="default: the runtime's (onnx-fp32 for onnxruntime)")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    names = sorted({n for pat in args.models.split(",") for n in mobexport.list_models(pat)})
    t0 = time.time()
    peaks = hostcal.measure(threads=1)
    print(f"host peaks (1 thread): {peaks.peak_macs / 1e9:.1f} GMAC/s, {peaks.peak_bw / 1e9:.1f} GB/s, "
          f"RP {peaks.ridge_point:.1f}", file=sys.stderr)
    table = lut.build(names, runtime=args.runtime, target=args.target, out=args.lut_file, runs=args.lut_runs,
                      warmup=5, threads=1, progress=lambda msg: print(msg, file=sys.stderr))
    rows = []
    for name in names:
        spec = mobexport.get_spec(name)
        model = mobexport.reparameterize(mobexport.create_model(name))
        measured, _ = lut.time_model(name, args.runtime, table.target, args.runs, 10, 1)
        rep = roofline.analyze(model, spec.input_size, "fp32", rps=(0,), peak_macs=peaks.peak_macs,
                               peak_bw=peaks.peak_bw)
        rows.append({"model": name, "measured_ms": measured, "roofline_ms": rep["bound_ms"],
                     "lut_ms": lut.predict(name, table)["predicted_ms"], "macs": rep["macs"],
                     "params": count_params(model)})
        print(f"{name}: {measured:.3f} ms", file=sys.stderr)
    m = [r["measured_ms"] for r in rows]
    mean = sum(m) / len(m)
    rmse = math.sqrt(sum((r["lut_ms"] - r["measured_ms"]) ** 2 for r in rows) / len(rows))
    corr = {k: spearman([r[k] for r in rows], m) for k in ("lut_ms", "roofline_ms", "macs", "params")}
    lines = [f"Predictors vs measured — {time.strftime('%Y-%m-%d')}, {platform.processor() or platform.machine()}, "
             f"{table.target} on {table.runtime} 1 thread (model and blocks converted by the target's converter, "
             f"each timed in its own worker), min of {args.runs} (LUT blocks: min of {args.lut_runs}); "
             f"host peaks {peaks.peak_macs / 1e9:.1f} GMAC/s, {peaks.peak_bw / 1e9:.1f} GB/s "
             f"(ridge point {peaks.ridge_point:.1f} MACs/byte); {len(table.entries)} distinct blocks; "
             f"took {time.time() - t0:.0f} s", "",
             "| model | measured min ms | roofline-bound ms | measured/bound | LUT ms | LUT err % | MACs (M) | params (M) |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['measured_ms']:.3f} | {r['roofline_ms']:.3f} | "
                     f"{r['measured_ms'] / r['roofline_ms']:.2f} | {r['lut_ms']:.3f} | "
                     f"{(r['lut_ms'] - r['measured_ms']) / r['measured_ms'] * 100:+.1f} | {r['macs'] / 1e6:.1f} | "
                     f"{r['params'] / 1e6:.2f} |")
    lines += ["", f"LUT: RMSE {rmse:.3f} ms = {rmse / mean * 100:.1f}% of mean latency {mean:.3f} ms; "
              f"Spearman LUT {corr['lut_ms']:.3f}, roofline-bound {corr['roofline_ms']:.3f}, "
              f"MACs-only {corr['macs']:.3f}, params-only {corr['params']:.3f} (n={len(rows)})"]
    text = "\n".join(lines)
    print(text)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text + "\n")
    from mobexport.benchmarks.analysis.plots import scatter_predicted_vs_measured

    scatter_predicted_vs_measured(rows, Path(args.out).with_suffix(".png"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
