"""Benchmark (not a test): latency predictors vs measurements over the zoo on this host.

For each model: measured min-of-N latency of the whole deploy model converted to the target (default onnx-fp32)
by its converter and timed on the runtime (default onnxruntime, 1 thread) exactly as the LUT's blocks are
(``lut.time_model``), the hierarchical roofline bound at ceilings calibrated with onnxruntime's own kernels
(``hostcal.measure_onnxruntime``) and its efficiency (bound / measured) per model and per MAC layer (onnxruntime's
per-node profile; results/roofline_layers.json), the per-block LUT prediction
(blocks converted and timed alone the same way), MACs and params. Then RMSE and Spearman rank correlation of
each predictor vs measured.

    python scripts/bench_predictors.py [--models PATTERN,...] [--runs 200] [--runtime NAME] [--target T]
                                       [--out results/predictors.md]
"""

from __future__ import annotations

import argparse
import json
import math
import os
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


def ceilings(n: int):
    """The runtime's ceilings, calibrated ``n`` times and each ceiling's best kept (a ceiling is a maximum;
    on a shared machine one calibration can be slowed by a neighbour)."""
    best = hostcal.measure_onnxruntime(threads=1)
    for _ in range(n - 1):
        c = hostcal.measure_onnxruntime(threads=1)
        best.peak_macs = max(best.peak_macs, c.peak_macs)
        best.bw = {k: max(v, c.bw[k]) for k, v in best.bw.items()}
    return best


def ceilings_line(c) -> str:
    cap = {k: ("-" if math.isinf(v) else f"{v / 2**20:g} MiB") for k, v in c.capacity.items()}
    return ("Hierarchical roofline, ceilings calibrated in onnxruntime (1 thread) with its own kernels: peak "
            f"{c.peak_macs / 1e9:.1f} GMAC/s (best of stride-1 3x3 and pointwise convolutions at the zoo's stage "
            "shapes, by session and by kernel time, and a MatMul; re-measured after every model, the best kept); "
            "streaming bandwidth "
            + ", ".join(f"{k} {c.bw[k] / 1e9:.1f} GB/s (holds {cap[k]})" for k in c.bw)
            + ". A layer's time is at least max(MACs / peak, per level: the bytes that do not fit in the levels "
              "inside it / that level's bandwidth); the model's bound is the sum over layers.")


def layer_profile(model, spec) -> list[dict]:
    """onnxruntime's per-node kernel times (the runtime layer's profiler, 1 thread, 20 runs) of the deploy model
    exported as the ONNX converter does (dynamo, opset 18), in execution order."""
    import tempfile

    from mobexport.converters.runtimes import get_runtime

    rt = get_runtime("onnxruntime")
    with tempfile.TemporaryDirectory() as d:
        path, x = Path(d) / "m.onnx", torch.randn(1, *spec.input_size)
        torch.onnx.export(model, (x,), str(path), dynamo=True, opset_version=18, external_data=False,
                          verbose=False)
        runner = rt.load(path, None, threads=1, options={"profile": d})
        runner.set_input(x.numpy())
        for _ in range(20):
            runner.invoke()
        runner.close()
        return roofline.execution_order(rt.read_profile(runner), runner.profile_file)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--models", default=DEFAULT)
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--lut-runs", type=int, default=100)
    ap.add_argument("--out", default="results/predictors.md")
    ap.add_argument("--lut-file", default="results/lut_onnxruntime_1t.json")
    ap.add_argument("--runtime", default="onnxruntime")
    ap.add_argument("--skip-lut", action="store_true", help="no LUT build/columns (bounds and efficiency only)")
    ap.add_argument("--calibrations", type=int, default=3, help="ceiling calibrations (best of)")
    ap.add_argument("--target", default=None, help="default: the runtime's (onnx-fp32 for onnxruntime)")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    names = sorted({n for pat in args.models.split(",") for n in mobexport.list_models(pat)})
    t0, load0 = time.time(), os.getloadavg()
    peaks = ceilings(args.calibrations)
    print(f"ceilings (onnxruntime, 1 thread): {peaks.peak_macs / 1e9:.1f} GMAC/s, "
          f"{ {k: round(v / 1e9, 1) for k, v in peaks.bw.items()} } GB/s", file=sys.stderr)
    if not args.skip_lut:  # a fresh table: the committed one predates converter-made blocks, and is not merged into
        Path(args.lut_file).unlink(missing_ok=True)
    table = None if args.skip_lut else lut.build(
        names, runtime=args.runtime, target=args.target, out=args.lut_file, runs=args.lut_runs, warmup=5, threads=1,
        progress=lambda msg: print(msg, file=sys.stderr))
    target = table.target if table else lut.resolve(args.runtime, args.target)[1].id
    measured, profiles = {}, {}
    for name in names:  # measure every model first, re-measuring the peak probes after each (clock drift)
        spec = mobexport.get_spec(name)
        model = mobexport.reparameterize(mobexport.create_model(name))
        measured[name], _ = lut.time_model(name, args.runtime, target, args.runs, 10, 1)
        profiles[name] = layer_profile(model, spec)
        rates, _ = hostcal.mac_rates(threads=1, repeats=20)
        peaks.peak_macs = max(peaks.peak_macs, *rates.values())
        print(f"{name}: {measured[name]:.3f} ms (peak so far {peaks.peak_macs / 1e9:.1f} GMAC/s)", file=sys.stderr)
    rows, layers = [], {}
    for name in names:  # bounds at the best ceilings seen over the whole run
        spec = mobexport.get_spec(name)
        model = mobexport.reparameterize(mobexport.create_model(name))
        rep = roofline.analyze(model, spec.input_size, "fp32", rps=(0,), peak_macs=peaks.peak_macs,
                               ceilings=peaks)
        per_layer = roofline.per_layer_efficiency(rep, profiles[name])
        layers[name] = per_layer
        rows.append({"model": name, "measured_ms": measured[name], "roofline_ms": rep["bound_ms"],
                     "lut_ms": lut.predict(name, table)["predicted_ms"] if table else None, "macs": rep["macs"],
                     "params": count_params(model), "per_layer": per_layer})
    load1 = os.getloadavg()
    m = [r["measured_ms"] for r in rows]
    mean = sum(m) / len(m)
    rmse = math.sqrt(sum((r["lut_ms"] - r["measured_ms"]) ** 2 for r in rows) / len(rows)) if table else math.nan
    corr = {k: spearman([r[k] for r in rows], m) if table or k != "lut_ms" else math.nan
            for k in ("lut_ms", "roofline_ms", "macs", "params")}
    lines = [f"Predictors vs measured — {time.strftime('%Y-%m-%d')}, {platform.processor() or platform.machine()}, "
             f"{target} on {args.runtime} 1 thread (model and blocks converted by the target's converter, "
             f"each timed in its own worker), min of {args.runs} (LUT blocks: min of {args.lut_runs}); "
             f"{f'{len(table.entries)} distinct blocks' if table else 'LUT not built this run (--skip-lut)'}; took {time.time() - t0:.0f} s; load average (1/5/15 min) "
             f"{load0[0]:.1f}/{load0[1]:.1f}/{load0[2]:.1f} at the start, {load1[0]:.1f}/{load1[1]:.1f}/"
             f"{load1[2]:.1f} at the end.", "", ceilings_line(peaks), "",
             "| model | measured min ms | roofline-bound ms | efficiency (bound/measured) | measured ≥ bound | "
             "MAC layers matched | median layer efficiency | layers over their bound | LUT ms | LUT err % | "
             "MACs (M) | params (M) |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        pl = r["per_layer"]
        lines.append(f"| {r['model']} | {r['measured_ms']:.3f} | {r['roofline_ms']:.3f} | "
                     f"{r['roofline_ms'] / r['measured_ms']:.2f} | "
                     f"{'yes' if r['measured_ms'] >= r['roofline_ms'] else '**no**'} | "
                     + (f"{len(pl['layers'])} | {pl['median_efficiency']:.2f} | {pl['below_bound']} | " if pl["matched"]
                        else f"no ({pl['bound_layers']} vs {pl['profiled_nodes']} nodes) | - | - | ")
                     + (f"{r['lut_ms']:.3f} | {(r['lut_ms'] - r['measured_ms']) / r['measured_ms'] * 100:+.1f} | "
                        if table else "- | - | ") + f"{r['macs'] / 1e6:.1f} | "
                     f"{r['params'] / 1e6:.2f} |")
    lines += ["", (f"LUT: RMSE {rmse:.3f} ms = {rmse / mean * 100:.1f}% of mean latency {mean:.3f} ms; "
                   f"Spearman LUT {corr['lut_ms']:.3f}, " if table else "Spearman ")
              + f"roofline-bound {corr['roofline_ms']:.3f}, "
              f"MACs-only {corr['macs']:.3f}, params-only {corr['params']:.3f} (n={len(rows)})"]
    lines += ["", "Efficiency per layer: " + str(Path(args.out).with_name("roofline_layers.json")) + " (bound, "
              "measured = onnxruntime's per-node kernel time, min of 20 profiled runs, matched in execution "
              "order). The ridge-point sweep is unchanged (`mobexport roofline`)."]
    Path(args.out).with_name("roofline_layers.json").write_text(json.dumps(
        {"ceilings": peaks.to_dict(), "models": layers}, indent=1, default=str))
    text = "\n".join(lines)
    print(text)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text + "\n")
    from mobexport.benchmarks.analysis.plots import scatter_predicted_vs_measured

    scatter_predicted_vs_measured(rows, Path(args.out).with_suffix(".png"),
                                  keys=("lut_ms", "roofline_ms") if table else ("roofline_ms",))
    return 0


if __name__ == "__main__":
    sys.exit(main())
