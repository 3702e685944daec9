"""TensorRT targets ``tensorrt-fp16`` (default, ``--fp16``) and ``tensorrt-w8a8`` (``--int8``).

Both are built from the ``onnx-fp32`` artifact (declared in ``depends_on``; the pipeline hands it over in
``state.dependencies``). The artifact of each target is the ONNX a TensorRT engine is built from, with the
precision baked in so the engine can be built as a *strongly typed* network (no weak-typing builder flags):

* fp16: every float32 initializer / Constant / Cast-to-float becomes float16; the graph I/O stays float32
  through one Cast after the input and one before the output (``to_fp16``; onnxconverter-common is not used).
* w8a8: explicit-quantization Q/DQ ONNX from ``onnxruntime.quantization.quantize_static`` (QDQ format,
  per-channel symmetric int8 weights, symmetric int8 activations with relative-MSE ranges over real
  calibration photos, Q/DQ on the inputs of Conv/Gemm/MatMul/Add), exported from the bias-corrected copy of
  the deploy model (``quantization.deploy``); on MobileNetV2 inputs-only Q/DQ with MSE ranges beat MinMax with
  Q/DQ on every output (pre-ReLU6 tensors too) in held-out logit SQNR (current figures: results/matrix.md).

That ONNX is validated on this host with onnxruntime (it runs Q/DQ graphs) through the shared validator.
The engine itself is built (``build_engine``, beside the ONNX) and validated against PyTorch through the
``tensorrt`` runtime (``converters/runtimes/tensorrt_engine.py``) only where ``import tensorrt`` works and a CUDA
GPU is present; it is timed by ``mobexport bench --runtime tensorrt`` (the one timing loop). Elsewhere the
manifest's ``tensorrt_engine`` entry says UNVALIDATED_NO_RUNTIME with the reason. No TensorRT wheel can be
installed on the project's machines (the libs live on NVIDIA's own index).
"""

from __future__ import annotations

import sys
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mobexport.exporter.errors import CalibrationError, ConversionError
from mobexport.exporter.status import Status

from . import register_converter
from .base import Availability, Converter, ExportState, GeneralOptions, Options, Target, option
from .onnx import OnnxFile, build_onnx, node_counts

FP16_MAX = 65504.0
VERBOSITY = ("layer_names_only", "detailed", "none")
# (op type, input index) that ONNX requires to stay float32 whatever the compute type
KEEP_FP32_INPUTS = {("Resize", 1), ("Resize", 2), ("Upsample", 1)}
UNQUANTIZED_OUTPUTS = ("Conv", "Gemm", "MatMul")  # quantized where consumed, after any activation


def _fp16_tensor(t):
    from onnx import numpy_helper

    arr = numpy_helper.to_array(t)
    return numpy_helper.from_array(np.clip(arr, -FP16_MAX, FP16_MAX).astype(np.float16), t.name)


def _kept_fp32(graph) -> set[str]:
    return {n.input[i] for n in graph.node for (op, i) in KEEP_FP32_INPUTS
            if n.op_type == op and len(n.input) > i}


def _convert_nodes(graph) -> None:
    from onnx import TensorProto

    for node in graph.node:
        for attr in node.attribute:
            if attr.name == "to" and node.op_type == "Cast" and attr.i == TensorProto.FLOAT:
                attr.i = TensorProto.FLOAT16
            elif attr.type == attr.TENSOR and attr.t.data_type == TensorProto.FLOAT:
                attr.t.CopyFrom(_fp16_tensor(attr.t))
            if attr.g.node:  # subgraphs (If/Loop) are not expected in these backbones; refuse loudly
                raise ValueError(f"to_fp16: subgraph in node {node.name or node.op_type} is not supported")


def _cast_io(graph) -> None:
    """Keep float32 graph inputs/outputs: Cast(input)→fp16 after each input, Cast(→fp32) before each output."""
    from onnx import TensorProto, helper

    ins, outs = ([v.name for v in vs if v.type.tensor_type.elem_type == TensorProto.FLOAT]
                 for vs in (graph.input, graph.output))
    for node in graph.node:
        node.input[:] = [f"{x}_fp16" if x in ins else x for x in node.input]
        node.output[:] = [f"{x}_fp16" if x in outs else x for x in node.output]
    for i, name in enumerate(ins):
        graph.node.insert(i, helper.make_node("Cast", [name], [f"{name}_fp16"], to=TensorProto.FLOAT16,
                                              name=f"{name}_cast_to_fp16"))
    graph.node.extend(helper.make_node("Cast", [f"{name}_fp16"], [name], to=TensorProto.FLOAT,
                                       name=f"{name}_cast_to_fp32") for name in outs)


def to_fp16(model):
    """fp32 → fp16 ONNX with float32 I/O. Initializers are clipped to the fp16 range (±65504)."""
    import onnx
    from onnx import TensorProto

    model = onnx.ModelProto.FromString(model.SerializeToString())  # a copy
    g = model.graph
    keep = _kept_fp32(g)
    for i, init in enumerate(g.initializer):
        if init.data_type == TensorProto.FLOAT and init.name not in keep:
            g.initializer[i].CopyFrom(_fp16_tensor(init))
    _convert_nodes(g)
    _cast_io(g)
    del g.value_info[:]  # intermediate types are re-inferred from the fp16 initializers
    model = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    onnx.checker.check_model(model)
    return model


class PhotoReader:
    """onnxruntime CalibrationDataReader over preprocessed (1, C, H, W) float32 photos."""

    def __init__(self, input_name: str, images: list[np.ndarray]):
        self._it = iter([{input_name: np.ascontiguousarray(x, dtype=np.float32)} for x in images])

    def get_next(self):
        return next(self._it, None)


def activation_ranges(src: Path, images: list[np.ndarray], spec, plan=None) -> dict[str, tuple[float, float]]:
    """Symmetric int8 range of every tensor of the ONNX ``src`` (``quantization.ranges`` ``mse-symmetric``),
    from onnxruntime runs on the calibration photos; the input is pinned to ±max of its preprocessing range."""
    import onnx
    import onnxruntime as ort

    from mobexport.quantization.ranges import RangeCollector, input_range

    m = onnx.load(str(src))
    have = {o.name for o in m.graph.output}
    for name in dict.fromkeys(o for n in m.graph.node for o in n.output if o and o not in have):
        m.graph.output.append(onnx.helper.make_empty_tensor_value_info(name))
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])
    inp, names = sess.get_inputs()[0].name, [o.name for o in sess.get_outputs()]
    col = RangeCollector(keep_first=plan is not None)
    from mobexport.exporter.progress import counted

    for x in counted(images, "calibrate"):
        for name, v in zip(names, sess.run(None, {inp: np.ascontiguousarray(x, np.float32)}), strict=True):
            if np.issubdtype(np.asarray(v).dtype, np.floating):
                col.add(name, v)
    a = max(abs(v) for v in input_range(spec))
    ranges = col.ranges("mse-symmetric", fixed={inp: (-a, a)})
    if plan is not None:  # loss-aware ranges (opt-in): quantization.range_search
        ranges = plan.apply(ranges, col.first, keep=(inp, *(o.name for o in m.graph.output[:1])))
    return ranges


def quantize_qdq(src: Path, dst: Path, images: list[np.ndarray], spec, plan=None, *,
                 ranges: dict[str, tuple[float, float]] | None = None, exclude: tuple[str, ...] = ()) -> None:
    """Q/DQ on the *inputs* of Conv/Gemm/MatMul/Add (outputs stay float up to the next quantized input: Conv→ReLU6
    is quantized once, after the clip; logits stay float). Symmetric int8 (TensorRT: zero point 0 only).
    ``ranges``: ``activation_ranges`` already measured (the budget loop measures them once); ``exclude``: node
    names left un-quantized (TensorRT keeps a layer without Q/DQ on its inputs in higher precision)."""
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    if not images:
        raise CalibrationError("tensorrt-w8a8 needs calibration photos: pass --calibration DIR or run `make assets`")
    name = onnx.load(str(src), load_external_data=False).graph.input[0].name
    if ranges is None:
        ranges = activation_ranges(src, images, spec, plan)
    overrides = {t: [{"rmin": np.float32(lo), "rmax": np.float32(hi)}] for t, (lo, hi) in ranges.items() if hi > lo}
    quantize_static(str(src), str(dst), PhotoReader(name, images), quant_format=QuantFormat.QDQ,
                    nodes_to_exclude=list(exclude), per_channel=True, activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                    calibrate_method=CalibrationMethod.MinMax,
                    extra_options={"ActivationSymmetric": True, "WeightSymmetric": True,
                                   "OpTypesToExcludeOutputQuantization": list(UNQUANTIZED_OUTPUTS),
                                   "TensorQuantOverrides": overrides})


def engine_available() -> Availability:
    """Can this host build and run an engine? The ``tensorrt`` runtime's answer (``import tensorrt``, a CUDA GPU)."""
    from .runtimes import get_runtime

    return get_runtime("tensorrt").available()


def serialize_engine(onnx_path: Path, opts: dict[str, Any]) -> bytes:
    """A strongly typed engine (precision comes from the ONNX), serialized. Only where ``engine_available()``."""
    import tensorrt as trt

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(Path(onnx_path).read_bytes()):
        errs = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise RuntimeError(f"TensorRT ONNX parser: {errs}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(opts.get("workspace_mb", 1024)) << 20)
    config.profiling_verbosity = getattr(trt.ProfilingVerbosity,
                                         opts.get("profiling_verbosity", VERBOSITY[0]).upper())
    cache_path = Path(opts["timing_cache"]) if opts.get("timing_cache") else None
    blob = cache_path.read_bytes() if cache_path and cache_path.exists() else b""
    config.set_timing_cache(config.create_timing_cache(blob), ignore_mismatch=False)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise RuntimeError("TensorRT engine build failed (see the TensorRT log above)")
    if cache_path:
        cache_path.write_bytes(bytes(config.get_timing_cache().serialize()))
    return bytes(serialized)


def build_engine(onnx_path: Path, engine_path: Path, opts: dict[str, Any]) -> dict[str, Any]:
    """``serialize_engine`` written to ``engine_path`` (beside the ONNX: the ``tensorrt`` runtime loads it there)."""
    import tensorrt as trt

    engine_path.write_bytes(serialize_engine(onnx_path, opts))
    return {"engine": engine_path.name, "tensorrt": trt.__version__, "size_bytes": engine_path.stat().st_size}


@dataclass(frozen=True)
class TensorRTOptions(Options):
    """The engine build's settings (used only where TensorRT and a CUDA GPU exist)."""

    workspace_mb: int = option(1024, "TensorRT engine: builder workspace pool (MiB)", minimum=16)
    timing_cache: str | None = option(None, "TensorRT engine: timing cache file (read if present, then written)")
    profiling_verbosity: str = option("layer_names_only", "TensorRT engine: profiling verbosity", choices=VERBOSITY)


@register_converter
class TensorRTConverter(OnnxFile, Converter):
    format = "tensorrt"
    targets = (
        Target("tensorrt", "fp16", "fp16 ONNX for a strongly typed TensorRT engine", depends_on=("onnx-fp32",)),
        Target("tensorrt", "w8a8", "Q/DQ int8 ONNX (explicit quantization) for TensorRT", depends_on=("onnx-fp32",)),
    )
    rank = 3
    summary = "export the ONNX a TensorRT engine is built from (--fp16 / --int8 Q/DQ); engine if TRT exists"
    Options = TensorRTOptions
    runtime_name = "onnxruntime (the engine's ONNX)"
    default_scheme = "fp16"
    range_search = True
    # --min-agreement / --min-sqnr: converters/tensorrt_budget.py. A layer with no Q/DQ on its inputs runs in
    # higher precision; int16 is not a TensorRT activation type
    budget_keeps = ("float",)
    packages = modules = ("onnx", "onnxruntime")
    # the artifact is the engine's ONNX; the onnxruntime runtime runs it (fp16 and Q/DQ). Engine: ``engine_available``

    def tool_versions(self) -> dict[str, str]:
        versions = super().tool_versions()
        if engine_available().ok:
            import tensorrt

            versions["tensorrt"] = tensorrt.__version__
        return versions

    def convert(self, state: ExportState, out_path: Path) -> Path:
        import onnx

        opts = asdict(TensorRTOptions.of(state))
        dep = state.dependencies.get("onnx-fp32")
        if dep is None or not Path(dep.path).is_file():
            raise ConversionError("the onnx-fp32 artifact this target is built from is missing", step="convert")
        out_path = Path(out_path)
        if state.target.scheme == "fp16":
            onnx.save(to_fp16(onnx.load(str(dep.path))), str(out_path))
        else:
            state.reports["quantization"] = self._int8(state, out_path)
        state.io = {"inputs": [{"name": "input", "shape": list(state.example_input.shape), "dtype": "float32",
                                "layout": "NCHW"}], "outputs": [{"name": "logits", "dtype": "float32"}]}
        state.reports["tensorrt_engine"] = self._engine(out_path, state, opts)
        return out_path

    @staticmethod
    def _int8(state: ExportState, out_path: Path) -> dict[str, Any]:
        """Q/DQ ONNX of the bias-corrected copy (``quantization.deploy``), built like onnx-fp32 (``build_onnx``);
        with a fidelity budget, ``tensorrt_budget.quantize_with_budget``."""
        from mobexport.quantization.deploy import int8_source_model

        from .budget_loop import budget_of

        if budget_of(state):
            from .tensorrt_budget import quantize_with_budget

            return quantize_with_budget(state, out_path)

        model, prep, plan = int8_source_model(state.model, state.calibration,
                                              range_search=GeneralOptions.of(state).range_search, symmetric=True)
        src = out_path.with_name(out_path.stem + ".float.onnx")
        try:
            build_onnx(state, model, src)
            quantize_qdq(src, out_path, state.calibration, state.spec, plan)
        finally:
            src.unlink(missing_ok=True)
        return {"recipe": "onnxruntime quantize_static (QDQ) of the bias-corrected deploy model",
                "detail": "symmetric int8 per-channel weights; symmetric int8 activations on the inputs of "
                          "Conv/Gemm/MatMul/Add (relative-MSE ranges over the calibration photos); float logits",
                **prep, "activation_ranges": "mse-symmetric (per-image relative)",
                "calibration_images": len(state.calibration)}

    def _engine(self, onnx_path: Path, state: ExportState, opts: dict[str, Any]) -> dict[str, Any]:
        """Where TensorRT and a CUDA GPU exist: build the engine beside the ONNX and compare its outputs with
        PyTorch through the ``tensorrt`` runtime and the shared validator (timing it is ``mobexport bench
        --runtime tensorrt``); elsewhere UNVALIDATED_NO_RUNTIME with the reason."""
        from mobexport.quantization.validate import validate

        from .runtimes import get_runtime

        avail = engine_available()
        unvalidated = Status.UNVALIDATED_NO_RUNTIME.value
        if not avail.ok:
            print(f"notice: {state.target.id}: engine not built, {unvalidated}: {avail.reason}", file=sys.stderr)
            return {"status": unvalidated, "reason": avail.reason, "install_hint": avail.install_hint}
        info = build_engine(onnx_path, onnx_path.with_suffix(".engine"), opts)
        runner = get_runtime("tensorrt").load(onnx_path)
        try:
            report = validate(runner, state)
        finally:
            runner.close()
        if report.status is not Status.OK:
            print(f"notice: {state.target.id}: the engine's outputs: {report.status.value}", file=sys.stderr)
        return {"status": report.status.value, "fidelity": report.to_dict(), **info, "options": opts}

    def manifest_extras(self, state: ExportState, artifact_path: Path) -> dict[str, Any]:
        return {"tensorrt_engine": state.reports.get("tensorrt_engine", {}),
                "onnx_for_engine": {"precision": state.target.scheme, "nodes": dict(node_counts(artifact_path)),
                                    "validated_with": "onnxruntime (CPU)"},
                **super().manifest_extras(state, artifact_path)}

    def check_structure(self, artifact_path: Path, state: ExportState) -> list[str]:
        import onnx

        m = onnx.load(str(artifact_path))
        types = node_counts(m)
        problems = [f"{types['BatchNormalization']} BatchNormalization node(s)"] if types["BatchNormalization"] else []
        problems += [f"graph I/O {v.name} is not float32" for v in [*m.graph.input, *m.graph.output]
                     if v.type.tensor_type.elem_type != onnx.TensorProto.FLOAT]
        if state.target.scheme == "fp16":
            keep = _kept_fp32(m.graph)
            fp32 = [i.name for i in m.graph.initializer if i.data_type == onnx.TensorProto.FLOAT and i.name not in keep]
            problems += [f"{len(fp32)} float32 initializer(s) left, e.g. {fp32[0]}"] if fp32 else []
        else:
            problems += _qdq_problems(m, types)
        return problems


def _qdq_problems(m, types: Counter) -> list[str]:
    from onnx import TensorProto, numpy_helper

    if not types["QuantizeLinear"] or not types["DequantizeLinear"]:
        return ["no QuantizeLinear/DequantizeLinear nodes: not a Q/DQ model"]
    zps = {n.input[2] for n in m.graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear") and len(n.input) > 2}
    inits = {i.name: i for i in m.graph.initializer}
    bad = [z for z in zps if z in inits and (inits[z].data_type not in (TensorProto.INT8, TensorProto.INT32)
                                             or np.any(numpy_helper.to_array(inits[z]) != 0))]
    return [f"{len(bad)} zero point(s) not symmetric int8, e.g. {bad[0]}"] if bad else []

