"""LiteRT / TFLite converter: ``tflite-fp32``, ``tflite-fp16`` (fp16 weights) and ``tflite-w8a8`` (full
integer: int8 per-channel weights, int8 activations, int8 input and output, no float op).

fp32/fp16 go through ``litert_torch.convert`` (fp16 with ``full_fp16_recipe``). w8a8 uses ai-edge-quantizer
``static_wi8_ai8`` on the fp32 .tflite, calibrated on real photos — the one recipe that stays fully integer
for every family (the README says how litert's PT2E path compared; it is not offered).
For XNNPACK (``tflite_xnnpack``): depthwise kernels over 25 taps are split into column bands before
conversion, and int8 HARD_SWISH is rewritten as ADD/MUL/MUL after quantization; at export the w8a8 graph is
timed against its float source and a slower int8 is said in a notice and the manifest's
``performance_notes``. ``--nhwc`` gives NHWC I/O through ``litert_torch.to_channel_last_io``. Runner: ai_edge_litert Interpreter
(XNNPACK), int8 I/O (de)quantized with the tensor's scale / zero point.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import base, register_converter
from .base import Converter, ExportState, Target, unsupported_op_from

METADATA_NAME = "mobexport"
# Coral Edge TPU compiler's documented supported operations (coral.ai/docs/edgetpu/models-intro), as TFLite
# builtin names. Not verifiable here (the compiler is not installable on Linux x86 without Coral's apt repo).
EDGETPU_OPS = frozenset({
    "ADD", "AVERAGE_POOL_2D", "CONCATENATION", "CONV_2D", "DEPTHWISE_CONV_2D", "EXPAND_DIMS", "FULLY_CONNECTED",
    "L2_NORMALIZATION", "LOGISTIC", "LSTM", "MAXIMUM", "MAX_POOL_2D", "MEAN", "MINIMUM", "MUL", "PACK", "PAD",
    "PRELU", "QUANTIZE", "REDUCE_MAX", "REDUCE_MIN", "RELU", "RELU6", "RELU_N1_TO_1", "RESHAPE",
    "RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR", "RSQRT", "SLICE", "SOFTMAX", "SPACE_TO_DEPTH", "SPLIT",
    "SQUEEZE", "STRIDED_SLICE", "SUB", "SUM", "SQUARED_DIFFERENCE", "TANH", "TRANSPOSE", "TRANSPOSE_CONV",
})
_INT_OK = (np.int8, np.int32)  # int32: biases and shape tensors


@dataclass(frozen=True)
class TFLiteOptions(base.Options):
    nhwc: bool = base.option(False, "NHWC (channels-last) input/output")


def _nhwc(state: ExportState) -> bool:
    return TFLiteOptions.of(state).nhwc


def inspect_ops(path: Path) -> dict[str, Any]:
    """Op types, I/O dtypes, ops writing non-int8 tensors and the Edge TPU CPU-fallback estimate."""
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(path))
    tensors = {t["index"]: t for t in it.get_tensor_details()}
    ops = it._get_ops_details()
    counts = Counter(op["op_name"] for op in ops)
    float_ops = Counter(op["op_name"] for op in ops
                        if any(i in tensors and tensors[i]["dtype"] not in _INT_OK for i in op["outputs"]))
    first_bad = next((k for k, op in enumerate(ops) if op["op_name"] not in EDGETPU_OPS
                      or op["op_name"] in float_ops), None)
    fallback = Counter(op["op_name"] for op in ops[first_bad:]) if first_bad is not None else Counter()
    return {"op_types": dict(sorted(counts.items())), "ops": len(ops),
            "input_dtype": np.dtype(it.get_input_details()[0]["dtype"]).name,
            "output_dtype": np.dtype(it.get_output_details()[0]["dtype"]).name,
            "float_ops": dict(sorted(float_ops.items())),
            "edgetpu_unsupported_ops": sorted({op["op_name"] for op in ops if op["op_name"] not in EDGETPU_OPS}),
            "edgetpu_cpu_fallback": dict(sorted(fallback.items()))}


def _convert_litert(state: ExportState, quant_config=None, model=None):
    os.environ.setdefault("LITERT_TORCH_SHOW_PROGRESS", "n")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import litert_torch
    import torch

    from .tflite_xnnpack import split_large_depthwise

    litert_torch.config.show_progress = False
    model, x = state.model if model is None else model, state.example_input
    model, n_split = split_large_depthwise(model)
    state.reports.setdefault("xnnpack_rewrites", {})["split_depthwise"] = n_split
    if _nhwc(state):
        model = litert_torch.to_channel_last_io(model, args=[0]).eval()
        x = x.permute(0, 2, 3, 1).contiguous()
    with torch.no_grad():
        try:
            return litert_torch.convert(model, (x,), quant_config=quant_config)
        except Exception as e:  # the lowering names the aten op it could not express
            if (err := unsupported_op_from(e, state, "litert-torch")) is not None:
                raise err from e
            raise


def _activation_qsvs(float_path: Path, state: ExportState, plan=None) -> dict[str, dict[str, np.ndarray]]:
    """Per-tensor int8 ranges of every activation (``quantization.ranges``, relative-MSE clipping), measured
    by running the float .tflite on the calibration photos; the input is pinned to the preprocessing range and
    the top of the logits range is left open (``ranges.LOGIT_HEADROOM``: a clipped top logit ties classes)."""
    from ai_edge_litert import interpreter as tfl

    from mobexport.quantization.ranges import RangeCollector, input_range

    it = tfl.Interpreter(model_path=str(float_path), experimental_preserve_all_tensors=True,
                         experimental_op_resolver_type=tfl.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    it.allocate_tensors()
    inp = it.get_input_details()[0]
    tensors = {t["index"]: t for t in it.get_tensor_details()}
    wanted = {inp["index"]} | {o for op in it._get_ops_details() for o in op["outputs"] if o >= 0}
    col, nhwc = RangeCollector(keep_first=plan is not None), _nhwc(state)
    from mobexport.exporter.progress import counted

    for c in counted(state.calibration, "calibrate"):
        it.set_tensor(inp["index"], np.ascontiguousarray(c.transpose(0, 2, 3, 1) if nhwc else c))
        it.invoke()
        for i in wanted:
            col.add(tensors[i]["name"], it.get_tensor(i))
    out_name = it.get_output_details()[0]["name"]
    ranges = col.ranges("mse", fixed={inp["name"]: input_range(state.spec)}, open_top=(out_name,))
    if plan is not None:
        ranges = plan.apply(ranges, col.first, keep=(inp["name"], out_name))
    ones = {i: (1,) * len(tensors[i]["shape"]) for i in wanted}
    return {tensors[i]["name"]: {"min": np.full(ones[i], ranges[tensors[i]["name"]][0], np.float32),
                                 "max": np.full(ones[i], ranges[tensors[i]["name"]][1], np.float32)}
            for i in wanted}


AEQ_CHUNK_BYTES = 32 * 1024 * 1024  # ai-edge-quantizer's own "large tensor" threshold


@contextlib.contextmanager
def _aeq_large_weights():
    """Work around an ai-edge-quantizer 0.10 bug for weights over 32 MiB (RepVGG-B1 and larger: a 2048x512x3x3
    conv is 37.7 MB): its chunked path flattens the weight to 2-D but broadcasts the rank-4 per-channel scale
    onto it and raises "input operand has more dimensions than allowed by the axis remapping". Here such a
    weight is quantized in slices along its leading (output-channel) axis instead, each slice under the
    threshold, with the same per-channel scales and rounding — the int8 values are identical to the unchunked
    computation, which the library does for every smaller tensor. Patched only while quantizing."""
    import dataclasses

    from ai_edge_quantizer.algorithms.uniform_quantize import uniform_quantize_tensor as uqt

    original = uqt.uniform_quantize

    def sliced(tensor_data, params, is_blockwise_quant=False):
        if is_blockwise_quant or tensor_data.ndim < 2 or tensor_data.nbytes <= AEQ_CHUNK_BYTES:
            return original(tensor_data, params, is_blockwise_quant)
        params = uqt.fix_quantization_params_rank(tensor_data, params)
        scale, zp = np.asarray(params.scale), np.asarray(params.zero_point)
        n = tensor_data.shape[0]
        step = max(1, n * (AEQ_CHUNK_BYTES // 2) // tensor_data.nbytes)
        parts = []
        for i in range(0, n, step):
            sl = slice(i, i + step)
            parts.append(original(tensor_data[sl], dataclasses.replace(
                params, scale=scale[sl] if scale.shape[0] == n else scale,
                zero_point=zp[sl] if zp.shape[0] == n else zp)))
        return np.concatenate(parts, axis=0)

    uqt.uniform_quantize = sliced
    try:
        yield
    finally:
        uqt.uniform_quantize = original


def write_quantized(result, path: Path) -> None:
    """Write ai-edge-quantizer's result with a plain file write. Its own ``export_model`` writes through an mmap
    of a file sized up front, where a full disk is a SIGBUS that kills the process (a pytest worker, a sweep's
    task) instead of the OSError (ENOSPC) the pipeline reports as 'no space left' with the output folder."""
    path.write_bytes(result.quantized_model)


def _quantize_aeq(state: ExportState, out_path: Path) -> dict[str, Any]:
    """Bias-corrected float .tflite → relative-MSE activation ranges → ai-edge-quantizer static_wi8_ai8."""
    from ai_edge_quantizer import quantizer, recipe

    from mobexport.quantization.deploy import int8_source_model

    from .tflite_xnnpack import int8_vs_fp32, lower_int8_hard_swish

    model, prep, plan = int8_source_model(state.model, state.calibration,
                                          range_search=base.GeneralOptions.of(state).range_search)
    float_path = out_path.with_name(out_path.stem + ".float.tflite")
    _convert_litert(state, model=model).export(str(float_path))
    try:
        qsvs = _activation_qsvs(float_path, state, plan)
        qt = quantizer.Quantizer(str(float_path), recipe.static_wi8_ai8())
        verbose = os.environ.get("MOBEXPORT_VERBOSE") == "1"
        # its summary goes to stderr with --verbose, else nowhere; stdout stays clean for --json
        with contextlib.redirect_stdout(sys.stderr if verbose else io.StringIO()), _aeq_large_weights():
            write_quantized(qt.quantize(qsvs, enable_progress_bar=verbose, enable_progress_report=verbose),
                            out_path)
        state.reports["xnnpack_rewrites"]["hard_swish_lowered"] = lower_int8_hard_swish(out_path)
        speed = int8_vs_fp32(float_path, out_path)
    finally:
        float_path.unlink(missing_ok=True)
    return {"recipe": "ai-edge-quantizer static_wi8_ai8",
            "detail": "int8 per-channel weights (float biases corrected for the mean weight-rounding error), "
                      "int8 per-tensor activations (relative-MSE clipped ranges over the calibration photos; "
                      "input pinned to the preprocessing range, logits top open x1.5), int8 I/O, applied to "
                      "the fp32 .tflite", **prep, "activation_ranges": "mse (per-image relative)",
            "int8_vs_fp32": speed}


@register_converter
class TFLiteConverter(Converter):
    format = "tflite"
    rank = 1
    summary = "export to LiteRT/TFLite: fp32, --fp16, or --int8 full-integer (tflite-w8a8)"
    Options = TFLiteOptions
    targets = (
        Target("tflite", "fp32", "LiteRT float32"),
        Target("tflite", "fp16", "LiteRT with float16 weights"),
        Target("tflite", "w8a8", "LiteRT full integer: int8 weights/activations/I-O"),
    )
    runtime_name = "ai-edge-litert"
    packages = ("litert-torch", "ai-edge-litert", "ai-edge-quantizer", "torchao")
    modules = ("litert_torch", "ai_edge_litert.interpreter", "ai_edge_quantizer")
    manifest_reports = ("tflite",)
    extension = ".tflite"
    range_search = True
    budget_keeps = ("float", "int16")  # --min-agreement / --min-sqnr: converters/tflite_budget.py

    def convert(self, state: ExportState, out_path: Path) -> Path:
        scheme = state.target.scheme
        if scheme == "fp32":
            _convert_litert(state).export(str(out_path))
        elif scheme == "fp16":
            from litert_torch.generative.quantize import quant_recipes

            _convert_litert(state, quant_recipes.full_fp16_recipe()).export(str(out_path))
            state.reports["quantization"] = {"recipe": "litert-torch full_fp16_recipe (fp16 weights)"}
        else:
            from .budget_loop import budget_of
            from .tflite_budget import quantize_with_budget

            quantize = quantize_with_budget if budget_of(state) else _quantize_aeq
            state.reports["quantization"] = {**quantize(state, out_path),
                                             "calibration_images": len(state.calibration)}
        state.reports["tflite"] = {**inspect_ops(out_path), "xnnpack_rewrites": state.reports["xnnpack_rewrites"]}
        if note := state.reports.get("quantization", {}).get("int8_vs_fp32", {}).get("note"):
            state.reports.setdefault("performance_notes", []).append(note)
            print(f"notice: {state.target.id}: {note}", file=sys.stderr)
        state.io = self._io(out_path, state)
        return out_path

    @staticmethod
    def _io(path: Path, state: ExportState) -> dict[str, Any]:
        from ai_edge_litert.interpreter import Interpreter

        it = Interpreter(model_path=str(path))
        layout = "NHWC" if _nhwc(state) else "NCHW"

        def desc(d, extra):
            out = {"name": d["name"], "shape": [int(v) for v in d["shape"]], "dtype": np.dtype(d["dtype"]).name,
                   **extra}
            if d["dtype"] != np.float32:
                out["quantization"] = {"scale": float(d["quantization"][0]), "zero_point": int(d["quantization"][1])}
            return out

        return {"inputs": [desc(d, {"layout": layout}) for d in it.get_input_details()],
                "outputs": [desc(d, {}) for d in it.get_output_details()]}

    def check_structure(self, artifact_path: Path, state: ExportState) -> list[str]:
        info = state.reports.get("tflite") or inspect_ops(artifact_path)
        if state.target.scheme != "w8a8":
            return []
        if "int8_budget" in state.reports:  # float islands allowed; a kept last layer may leave the output float
            from .tflite_budget import structure_problems

            return structure_problems(info)
        problems = []
        if info["input_dtype"] != "int8" or info["output_dtype"] != "int8":
            problems.append(f"I/O is {info['input_dtype']}/{info['output_dtype']}, not int8/int8")
        if info["float_ops"]:
            problems.append(f"float ops left in a full-integer model: {info['float_ops']}")
        return problems

    def embed_metadata(self, artifact_path: Path, metadata: dict[str, str]) -> None:
        from ai_edge_litert import schema_py_generated as schema
        from ai_edge_litert.tools import flatbuffer_utils

        from .tflite_xnnpack import write_flatbuffer

        model = flatbuffer_utils.read_model(str(artifact_path))
        buf = schema.BufferT()
        buf.data = np.frombuffer(json.dumps(metadata, sort_keys=True).encode(), dtype=np.uint8)
        model.buffers.append(buf)
        md = schema.MetadataT()
        md.name, md.buffer = METADATA_NAME, len(model.buffers) - 1
        model.metadata = [m for m in (model.metadata or []) if m.name != METADATA_NAME.encode()] + [md]
        write_flatbuffer(model, artifact_path)

    def read_metadata(self, artifact_path: Path) -> dict[str, str]:
        from ai_edge_litert.tools import flatbuffer_utils

        model = flatbuffer_utils.read_model(str(artifact_path))
        for md in model.metadata or []:
            if md.name == METADATA_NAME.encode():
                return json.loads(bytes(model.buffers[md.buffer].data).decode())
        return {}

    def manifest_extras(self, state: ExportState, artifact_path: Path) -> dict[str, Any]:
        extras = super().manifest_extras(state, artifact_path)
        if state.reports.get("performance_notes"):
            extras["performance_notes"] = list(state.reports["performance_notes"])
        if state.target.scheme == "w8a8":
            extras["edgetpu_cpu_fallback"] = sorted(extras["tflite"].get("edgetpu_cpu_fallback", {}))
            extras["edgetpu_note"] = ("estimate from the documented Edge TPU op list and tensor dtypes; the Edge "
                                      "TPU compiler is not available here, so the mapping is unverified")
        return extras

