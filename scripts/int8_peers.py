"""int8 side by side with peer tools on identical data (issue #24): a benchmark, not a test.

Every row quantizes the same float model (real weights from `make assets`, re-parameterized) with the same
calibration images (``quantization.calibration.image_sets``: the photos and their mirrors the exporter calibrates
on) and is judged on the same held-out crops (every held-out photo x 5 crops x {as is, mirrored}, never a
calibration photo; ``quantization.budget.held_out_crops``):

* onnxruntime ``quantize_static`` (QDQ, int8 weights per channel, int8 activations): MinMax (its default
  calibration), Percentile 99.99, Entropy;
* litert-torch PT2E for XNNPACK (torchao ``prepare_pt2e`` / ``convert_pt2e``, symmetric per-channel config);
* ai-edge-quantizer's stock ``static_wi8_ai8`` recipe with its own min/max calibration;
* ours: ``tflite-w8a8`` (full integer) and ``tflite-w8a8 --min-agreement A`` (the fidelity budget: float islands
  under XNNPACK), ``tensorrt-w8a8`` and ``tensorrt-w8a8 --min-agreement A`` (Q/DQ ONNX, kept layers without Q/DQ;
  run here by onnxruntime CPU: no TensorRT on this host), each through the exporter with its validator's verdict.

Columns: top-1 agreement with float on the crops with a 95 % Wilson interval, logit SQNR, top-1 accuracy on the
labelled subset (photos with a human-checked ImageNet label, ``labels.json``; any listed class counts) for the
artifact and for float, host latency (1 thread, min of runs) and for our rows the validator's status. The table
goes to results/int8_peers.md (or --out) with the command, date and host.

  python scripts/int8_peers.py                                   # MobileNetV2 + EfficientNet-Lite0, every row
  python scripts/int8_peers.py --models mobilenetv2_100 --rows ours ours-budget --min-agreement 0.95
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

DEFAULT_MODELS = ("mobilenetv2_100", "efficientnet_lite0")
ROWS = ("ort-minmax", "ort-percentile", "ort-entropy", "litert-pt2e", "aeq-stock", "ours", "ours-budget", "ours-trt",
        "ours-trt-budget")
RESULTS_MD = Path(__file__).resolve().parents[1] / "results" / "int8_peers.md"
LATENCY_RUNS = 30


class Data:
    """One model's float model, calibration arrays, held-out crops, float reference and labels."""

    def __init__(self, model: str):
        import torch

        from mobexport.api import create_model, get_spec, reparameterize
        from mobexport.exporter import assets
        from mobexport.quantization.budget import CROPS_PER_PHOTO, held_out_crops
        from mobexport.quantization.calibration import image_sets

        self.name, self.spec = model, get_spec(model)
        self.weights = str(assets.weights_path(self.spec.default_weights))
        self.net = reparameterize(create_model(model, weights=self.weights)).eval()
        sets = image_sets(self.spec)
        self.calibration, files = sets.calibration, sets.holdout_files
        self.xs = held_out_crops(self.spec, files)
        with torch.no_grad():
            self.ref = np.concatenate([self.net(torch.from_numpy(x)).numpy().reshape(1, -1) for x in self.xs])
        labels = assets.labels()
        per_photo = [labels.get(Path(f).name) for f in files]
        self.labelled = [(i * CROPS_PER_PHOTO + j, set(lab)) for i, lab in enumerate(per_photo) if lab
                         for j in range(CROPS_PER_PHOTO)]
        self.photos = len(files)
        self.x0 = torch.from_numpy(self.xs[0])

    def accuracy(self, out: np.ndarray) -> float:
        top = out.argmax(1)
        return sum(int(top[i]) in ok for i, ok in self.labelled) / max(len(self.labelled), 1)


# ---------------------------------------------------------------- the rows: each returns (outputs, ms, note)

def _tflite_run(path: Path, data: Data):
    from mobexport.converters import get_converter
    from mobexport.converters.base import Artifact
    from mobexport.converters.runtimes import time_round_trips, warm_up

    runner = get_converter("tflite").load(Artifact("tflite-w8a8", path), threads=1)
    try:
        out = np.concatenate([np.asarray(runner.run(x), np.float32).reshape(1, -1) for x in data.xs])
        x = runner.native_input(data.xs[0])
        warm_up(runner, x, 5)
        return out, min(time_round_trips(runner, x, LATENCY_RUNS))
    finally:
        runner.close()


def _ort(method: str, data: Data, tmp: Path):
    import onnxruntime as ort
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    from mobexport.converters.pipeline import export

    src = export(data.name, "onnx-fp32", weights=data.weights, out_dir=tmp / "onnx").artifact
    inp = ort.InferenceSession(str(src), providers=["CPUExecutionProvider"]).get_inputs()[0].name

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter(data.calibration)

        def get_next(self):
            x = next(self.it, None)
            return None if x is None else {inp: x}

    extra = {"CalibPercentile": 99.99} if method == "Percentile" else {}
    dst = tmp / f"ort-{method}.onnx"
    quantize_static(str(src), str(dst), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                    calibrate_method=getattr(CalibrationMethod, method), extra_options=extra)
    out, ms = _ort_run(dst, data)
    return out, ms, f"QDQ, per-channel int8 weights, int8 activations, {method} calibration"


def _ort_run(path: Path, data: Data):
    """(outputs on the crops, min ms) of an ONNX on onnxruntime CPU, 1 thread."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0].name
    out = np.concatenate([sess.run(None, {inp: x})[0].reshape(1, -1) for x in data.xs])
    for _ in range(5):
        sess.run(None, {inp: data.xs[0]})
    ms = []
    for _ in range(LATENCY_RUNS):  # a script may time its own loop (only package code uses the one loop)
        t0 = time.perf_counter()
        sess.run(None, {inp: data.xs[0]})
        ms.append((time.perf_counter() - t0) * 1e3)
    return out, min(ms)


def _pt2e(data: Data, tmp: Path):
    import litert_torch
    import torch
    from litert_torch.quantize.pt2e_quantizer import PT2EQuantizer, get_symmetric_quantization_config
    from litert_torch.quantize.quant_config import QuantConfig
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    q = PT2EQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True))
    gm = prepare_pt2e(torch.export.export(data.net, (data.x0,)).module(), q)
    with torch.no_grad():
        for c in data.calibration:
            gm(torch.from_numpy(c))
    gm = convert_pt2e(gm, fold_quantize=False)
    path = tmp / "pt2e.tflite"
    with torch.no_grad():
        litert_torch.convert(gm, (data.x0,), quant_config=QuantConfig(pt2e_quantizer=q)).export(str(path))
    out, ms = _tflite_run(path, data)
    return out, ms, "litert-torch PT2E, symmetric per-channel (XNNPACKQuantizer config), float I/O"


def _aeq_stock(data: Data, tmp: Path):
    import contextlib
    import io

    import litert_torch
    import torch
    from ai_edge_quantizer import quantizer, recipe

    fp = tmp / "aeq-float.tflite"
    with torch.no_grad():
        litert_torch.convert(data.net, (data.x0,)).export(str(fp))
    qt = quantizer.Quantizer(str(fp), recipe.static_wi8_ai8())
    from ai_edge_litert.interpreter import Interpreter

    name = Interpreter(model_path=str(fp)).get_signature_runner().get_input_details()
    key = next(iter(name))
    with contextlib.redirect_stdout(io.StringIO()):
        ranges = qt.calibrate({"serving_default": [{key: c} for c in data.calibration]})
        qt.quantize(ranges).export_model(str(tmp / "aeq.tflite"), overwrite=True)
    out, ms = _tflite_run(tmp / "aeq.tflite", data)
    return out, ms, "ai-edge-quantizer static_wi8_ai8 with its own calibration (min/max), float I/O"


def _ours(data: Data, tmp: Path, options: dict, target: str = "tflite-w8a8"):
    from mobexport.converters.pipeline import export

    r = export(data.name, target, weights=data.weights, out_dir=tmp / "ours", options=options)
    out, ms = (_tflite_run if target.startswith("tflite") else _ort_run)(Path(r.artifact), data)
    b = r.manifest.get("int8_budget")
    if b:
        lat = b["latency"]
        note = (f"budget {b['budget']}: {len(b['layers_kept'])} kept as {b['keep_as']} "
                f"({', '.join(b['layers_kept'])}); {lat['cost_pct']:+.1f} % vs full int8 at export "
                f"({lat['protocol']})")
    else:
        note = ("full integer (int8 I/O)" if target.startswith("tflite")
                else "Q/DQ ONNX for TensorRT, run here by onnxruntime CPU (engine not built: no TensorRT here)")
    return out, ms, f"{note}; validator {r.status.value}"


def run_row(row: str, data: Data, tmp: Path, min_agreement: float):
    methods = {"ort-minmax": "MinMax", "ort-percentile": "Percentile", "ort-entropy": "Entropy"}
    if row in methods:
        return _ort(methods[row], data, tmp)
    if row == "litert-pt2e":
        return _pt2e(data, tmp)
    if row == "aeq-stock":
        return _aeq_stock(data, tmp)
    target = "tensorrt-w8a8" if row.startswith("ours-trt") else "tflite-w8a8"
    return _ours(data, tmp, {"min_agreement": min_agreement} if row.endswith("budget") else {}, target)


def _write(out: Path, command: str, lines: list[str], meta: dict, planned: int) -> None:
    """The table so far (rewritten after every row; a run cut short says how many rows it has)."""
    table = (f"| model | tool / configuration | top-1 agreement with float on {meta['crops']} held-out crops "
             f"[95% CI] | SQNR dB | top-1 accuracy on the {meta['labelled']} labelled crops (float) | host ms "
             "(1 thread) | what it is |\n|---|---|---|---|---|---|---|\n" + "\n".join(lines) + "\n")
    partial = "" if len(lines) == planned else f" **Partial: {len(lines)} of {planned} rows.**"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        "# int8 side by side: peer tools and ours on identical data (generated by scripts/int8_peers.py)\n\n"
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {platform.machine()} {os.cpu_count()} CPUs "
        f"(shared with other jobs: latencies are indicative), Python {platform.python_version()}. "
        f"Same float model, the same {meta['calibration']} calibration images and the same "
        f"{meta['photos']} held-out photos x 10 crops for every row.{partial} Command: `{command.strip()}`\n\n"
        + table)


def main(argv=None) -> int:
    import torch

    from mobexport.quantization.budget import wilson
    from mobexport.quantization.metrics import sqnr_db

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=list(DEFAULT_MODELS))
    ap.add_argument("--rows", nargs="+", default=list(ROWS), choices=ROWS)
    ap.add_argument("--min-agreement", type=float, default=0.95, help="the ours-budget row's budget (0.95)")
    ap.add_argument("--out", type=Path, default=RESULTS_MD)
    args = ap.parse_args(argv)
    command = "python scripts/int8_peers.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    torch.set_num_threads(1)
    lines, failed, meta = [], False, {}
    planned = len(args.models) * len(args.rows)
    for model in args.models:
        data = Data(model)
        float_acc = data.accuracy(data.ref)
        meta.update(crops=len(data.xs), labelled=len(data.labelled), calibration=len(data.calibration),
                    photos=data.photos)
        for row in args.rows:
            t0 = time.monotonic()
            with tempfile.TemporaryDirectory() as tmp:
                try:
                    out, ms, note = run_row(row, data, Path(tmp), args.min_agreement)
                except Exception as e:  # a peer tool failing on this model is a result too
                    failed |= row.startswith("ours")
                    lines.append(f"| {model} | {row} | failed: {type(e).__name__}: {str(e)[:160]} | | | | |")
                    print(lines[-1], flush=True)
                    _write(args.out, command, lines, meta, planned)
                    continue
            k, n = int((out.argmax(1) == data.ref.argmax(1)).sum()), len(out)
            lo, hi = wilson(k, n)
            failed |= row.startswith("ours") and "validator OK" not in note
            lines.append(f"| {model} | {row} | {k}/{n} = {k / n:.3f} [{lo:.3f}, {hi:.3f}] | {sqnr_db(data.ref, out):.1f} "
                         f"| {data.accuracy(out):.3f} ({float_acc:.3f}) | {ms:.2f} | {note} |")
            print(lines[-1], f"({time.monotonic() - t0:.0f} s)", flush=True)
            _write(args.out, command, lines, meta, planned)
    print(f"wrote {args.out}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
