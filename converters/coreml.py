"""Core ML converter: ``coreml-fp16`` (default), ``coreml-w8a8`` (``--int8``), ``coreml-w8`` (``--w8``).

mlprogram, fp16 compute precision, fixed input shape, input ``input`` / output ``logits`` (float32 I/O: one
cast at each end). Conversion path: ``torch.jit.trace`` (``check_trace=False``; the traced module is compared
with the eager one instead) → ``ct.convert``. Measured here (coremltools 9.0, torch 2.13, numpy 2.3.5) on a
plain conv net, an SE/h-swish net and a conv+MHSA hybrid: ``torch.export`` (``run_decompositions({})``)
converts all three in fp16 but fails for **every** W8A8 model (the ``LinearQuantizer``-finalised graph holds
quantized modules: ``UnsupportedFakeTensorException: quantized nyi in meta tensors``); ``jit.trace`` converts
all of them, fp16 and W8A8 (the hybrid only with ``check_trace=False``: MHA's fast path differs between
invocations) and records each op's PyTorch module name, which the ANE lint reports. One path for all schemes.

Schemes: W8A8 = ``ct.optimize.torch.quantization.LinearQuantizer`` (symmetric int8 weights per-channel, int8
activations observed on real photos in torch, then finalised and traced; ``linear_quantize_activations``
needs ``predict``, which fails off macOS). W8 = ``ct.optimize.coreml.linear_quantize_weights`` (int8,
per-channel, symmetric) on the converted fp16 model; weights of <= 2048 elements stay fp16 (coremltools'
default threshold: too small to pay for the dequantize).

Default minimum target iOS17 (spec v8 / CoreML7 opset): the W8A8 ``quantize``/``dequantize`` ops on
activations need it, and one floor for all three schemes keeps fp16/w8/w8a8 packages loadable on the same
devices (iOS16 is still accepted for fp16/w8).

Validation: Core ML executes only on macOS. Off macOS the artifact is UNVALIDATED_NO_RUNTIME (with the
reason, never OK) and a notice goes to stderr; ``--require-validation`` (a general policy, every format) turns
that into exit 3 before any work. ``--strict-ane`` fails (exit 1) when the Neural Engine lint (``ane_lint.py``) flags anything.
"""

from __future__ import annotations

import json
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mobexport.exporter.errors import CalibrationError, ConversionError, UsageError, ValidationError

from . import register_converter
from .base import Converter, ExportState, Options, Target, option

COMPUTE_UNITS = ("ALL", "CPU_AND_NE", "CPU_ONLY", "CPU_AND_GPU")
MIN_TARGETS = ("iOS16", "iOS17", "iOS18")
DEFAULT_MIN_TARGET = "iOS17"
CONVERSION_PATH = "jit.trace"
META_PREFIX = "mobexport."
QUANT_OPS = ("constexpr_affine_dequantize", "constexpr_blockwise_shift_scale")
CALIBRATION_STEPS = 32


def _normalized(model, mean, std):
    """``(x - mean) / std`` in front of the network, for ImageType inputs in [0, 1]."""
    import torch

    class Normalized(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = model
            self.register_buffer("scale", 1.0 / torch.tensor(std).view(1, -1, 1, 1))
            self.register_buffer("shift", -torch.tensor(mean).view(1, -1, 1, 1) / torch.tensor(std).view(1, -1, 1, 1))

        def forward(self, x):
            return self.net(x * self.scale + self.shift)

    return Normalized().eval()


@dataclass(frozen=True)
class CoreMLOptions(Options):
    compute_units: str = option("ALL", "compute units recorded for loading/validation (default ALL)",
                                choices=COMPUTE_UNITS)
    min_target: str = option(DEFAULT_MIN_TARGET, "minimum deployment target (default iOS17: needed by --int8, one "
                                                 "floor for all)", choices=MIN_TARGETS)
    image_input: bool = option(False, "ImageType input with the spec's scaling, mean/std and RGB/BGR baked in")
    strict_ane: bool = option(False, "exit 1 if the Neural Engine lint flags anything")

    def check(self, target: Target) -> None:
        if target.scheme == "w8a8" and MIN_TARGETS.index(self.min_target) < MIN_TARGETS.index("iOS17"):
            raise UsageError(f"coreml-w8a8 needs --min-target iOS17 or later (activation quantize ops), "
                             f"got {self.min_target}")


def quantize_w8a8(model, calibration: list[np.ndarray], example):
    """Int8 weights + activations with coremltools' torch LinearQuantizer, observers fed real photos."""
    import torch
    from coremltools.optimize.torch.quantization import LinearQuantizer, LinearQuantizerConfig

    if not calibration:
        raise CalibrationError("coreml-w8a8 needs calibration photos: pass --calibration DIR or run `make assets`")
    # milestones: observers on from step 0, fake-quant never switched on during calibration (pure PTQ)
    cfg = LinearQuantizerConfig.from_dict({"global_config": {
        "quantization_scheme": "symmetric", "weight_dtype": "qint8", "activation_dtype": "quint8",
        "weight_per_channel": True, "milestones": [0, 10**9, 10**9, 0]}})
    quantizer = LinearQuantizer(model, cfg)
    try:
        prepared = quantizer.prepare(example_inputs=(example,), inplace=False)
    except Exception as e:  # torch.fx cannot trace the model (shape-dependent Python in attention blocks)
        raise ConversionError(
            f"coreml-w8a8 needs a model torch.fx can trace (coremltools' activation quantizer works on an fx "
            f"graph); this one is not: {type(e).__name__}: {str(e).splitlines()[0][:160]}",
            step="quantize", hint="coreml-w8 (--w8, weight-only int8) and coreml-fp16 convert this model") from e
    quantizer.step()
    with torch.no_grad():
        from mobexport.exporter.progress import counted

        for x in counted(calibration[:CALIBRATION_STEPS], "calibrate"):
            prepared(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)))
    return quantizer.finalize(prepared, inplace=False).eval()


def _trace(module, example):
    """jit.trace without the re-trace check; the traced graph must match eager on the example instead."""
    import torch

    with torch.no_grad():
        traced = torch.jit.trace(module, example, check_trace=False)
        ref, out = module(example), traced(example)
    err = float((ref - out).abs().max()) / max(float(ref.abs().max()), 1e-12)
    if not err <= 1e-5:
        raise ConversionError(f"jit.trace output differs from eager (rel max error {err:.3g}): "
                              "the model has data-dependent control flow", step="convert")
    return traced


def _ct_inputs(state: ExportState, image_input: bool):
    import coremltools as ct

    shape = tuple(state.example_input.shape)
    if image_input:
        layout = ct.colorlayout.BGR if state.spec.color == "BGR" else ct.colorlayout.RGB
        return [ct.ImageType(name="input", shape=shape, scale=1 / 255.0, color_layout=layout)]
    return [ct.TensorType(name="input", shape=shape, dtype=np.float32)]


def _io(state: ExportState, image_input: bool, num_classes: int) -> dict[str, Any]:
    c, h, w = state.spec.input_size
    inp = {"name": "input", "shape": [1, c, h, w], "dtype": "float32", "layout": "NCHW"}
    if image_input:
        inp.update(dtype="uint8", layout="image", color=state.spec.color,
                   preprocessing="baked in (scale 1/255, mean/std)")
    return {"inputs": [inp], "outputs": [{"name": "logits", "shape": [1, num_classes], "dtype": "float32"}]}


def _build_metadata(state: ExportState, opts: CoreMLOptions) -> dict[str, str]:
    pp = state.spec.preprocessing
    return {f"{META_PREFIX}model": state.model_name, f"{META_PREFIX}target": state.target.id,
            f"{META_PREFIX}scheme": state.target.scheme, f"{META_PREFIX}conversion_path": CONVERSION_PATH,
            f"{META_PREFIX}compute_units": opts.compute_units, f"{META_PREFIX}min_target": opts.min_target,
            f"{META_PREFIX}image_input": json.dumps(opts.image_input),
            f"{META_PREFIX}preprocessing": json.dumps({"mean": list(pp.mean), "std": list(pp.std),
                                                       "color": pp.color, "scale": 1 / 255})}


def _notice(msg: str) -> None:
    print(msg, file=sys.stderr)


def compute_plan_placement(path: Path, compute_units: str = "ALL") -> dict[str, Any]:
    """macOS only: per-op preferred device from MLComputePlan (the real ANE placement)."""
    from collections import Counter

    import coremltools as ct
    from coremltools.models.compute_plan import MLComputePlan

    compiled = ct.models.MLModel(str(path), compute_units=ct.ComputeUnit[compute_units]).get_compiled_model_path()
    plan = MLComputePlan.load_from_path(compiled, ct.ComputeUnit[compute_units])
    devices: Counter = Counter()
    off_ane: list[str] = []
    for op in plan.model_structure.program.functions["main"].block.operations:
        usage = plan.get_compute_device_usage_for_mlprogram_operation(op)
        if usage is None:  # constants have no device
            continue
        dev = type(usage.preferred_compute_device).__name__.replace("ML", "").replace("ComputeDevice", "")
        devices[dev] += 1
        if dev != "NeuralEngine":
            off_ane.append(f"{op.operator_name}:{dev}")
    return {"devices": dict(devices), "off_ane": off_ane[:100]}


@register_converter
class CoreMLConverter(Converter):
    format = "coreml"
    rank = 2
    summary = "export to Core ML mlprogram: fp16, --int8 (w8a8) or --w8 (weights only)"
    Options = CoreMLOptions
    targets = (
        Target("coreml", "fp16", "Core ML mlprogram, fp16 compute precision"),
        Target("coreml", "w8a8", "Core ML mlprogram, int8 weights and activations (iOS17+)"),
        Target("coreml", "w8", "Core ML mlprogram, int8 per-channel weights, fp16 activations"),
    )
    runtime_name = "Core ML"
    # a fidelity budget is a measured loop: every step runs the artifact on the held-out crops
    budget_refusal = ("it is a measured loop (build, run on the held-out crops, keep a layer, repeat) "
                      "and there is no Core ML runtime off macOS; --int8 alone gives full w8a8")
    default_scheme = "fp16"
    extension = ".mlpackage"
    modules = ("coremltools",)
    manifest_reports = ("coreml", "ane_lint")

    def tool_versions(self) -> dict[str, str]:
        import coremltools as ct

        return {"coremltools": ct.__version__}

    def convert(self, state: ExportState, out_path: Path) -> Path:
        opts = CoreMLOptions.of(state)
        mlmodel = self._to_mlmodel(state, opts)
        from .ane_lint import lint_program

        lint = lint_program(mlmodel._mil_program, expect_fp16=True)
        state.reports["ane_lint"] = lint.to_dict()
        _notice(lint.summary())
        if opts.strict_ane and not lint.ok:
            for f in lint.findings[:20]:
                _notice(f"  {f.rule}: {f.op_type} {f.op_name} {f.layer} ({f.detail})")
            raise ValidationError(f"--strict-ane: {lint.ops_flagged} op(s) flagged by the Neural Engine lint",
                                  report=lint.to_dict())
        mlmodel.user_defined_metadata.update(_build_metadata(state, opts))
        mlmodel.short_description = f"{state.model_name} ({state.target.id}) exported by mobexport"
        out_path = Path(out_path).with_suffix(".mlpackage")
        mlmodel.save(str(out_path))
        state.reports["coreml"] = {"conversion_path": CONVERSION_PATH, "compute_units": opts.compute_units,
                                   "min_target": opts.min_target, "image_input": opts.image_input,
                                   "compute_precision": "FLOAT16"}
        if not (rt := self.runtime_available()).ok:
            _notice(f"notice: {state.target.id} is UNVALIDATED_NO_RUNTIME: {rt.reason}")
        return out_path

    def _to_mlmodel(self, state: ExportState, opts: CoreMLOptions):
        import coremltools as ct

        module = state.model.eval()
        if state.target.scheme == "w8a8":
            module = quantize_w8a8(module, state.calibration, state.example_input)
        if opts.image_input:
            module = _normalized(module, state.spec.mean, state.spec.std)
            example = (state.example_input - state.example_input.min()) / (
                state.example_input.max() - state.example_input.min())
        else:
            example = state.example_input
        traced = _trace(module, example)
        mlmodel = ct.convert(
            traced, inputs=_ct_inputs(state, opts.image_input),
            outputs=[ct.TensorType(name="logits", dtype=np.float32)], convert_to="mlprogram",
            compute_precision=ct.precision.FLOAT16,
            minimum_deployment_target=getattr(ct.target, opts.min_target),
            compute_units=ct.ComputeUnit[opts.compute_units])
        if state.target.scheme == "w8":
            mlmodel = self._quantize_weights(mlmodel)
        state.io = _io(state, opts.image_input, int(traced(example).shape[-1]))
        return mlmodel

    @staticmethod
    def _quantize_weights(mlmodel):
        import coremltools.optimize.coreml as cto

        cfg = cto.OptimizationConfig(global_config=cto.OpLinearQuantizerConfig(
            mode="linear_symmetric", dtype="int8", granularity="per_channel"))
        return cto.linear_quantize_weights(mlmodel, cfg)


    def manifest_extras(self, state: ExportState, artifact_path: Path) -> dict[str, Any]:
        extras, rt = super().manifest_extras(state, artifact_path), self.runtime_available()
        if not rt.ok:
            extras["compute_plan"] = {"status": "UNVALIDATED_NO_RUNTIME", "reason": rt.reason}
            return extras
        try:
            extras["compute_plan"] = compute_plan_placement(artifact_path, extras["coreml"].get("compute_units", "ALL"))
        except Exception as e:  # placement is informative; the fidelity check is the gate
            extras["compute_plan"] = {"error": f"{type(e).__name__}: {e}"}
        return extras

    def embed_metadata(self, artifact_path: Path, metadata: dict[str, str]) -> None:
        import coremltools as ct

        m = ct.models.MLModel(str(artifact_path), skip_model_load=True)
        m.user_defined_metadata.update({k: str(v) for k, v in metadata.items()})
        tmp = Path(artifact_path).with_name(Path(artifact_path).stem + ".meta-tmp.mlpackage")
        m.save(str(tmp))
        shutil.rmtree(artifact_path)
        tmp.rename(artifact_path)

    def read_metadata(self, artifact_path: Path) -> dict[str, str]:
        import coremltools as ct

        return dict(ct.models.MLModel(str(artifact_path), skip_model_load=True).user_defined_metadata)

    def check_structure(self, artifact_path: Path, state: ExportState) -> list[str]:
        """Needs no Core ML runtime. With --image-input one add is the baked normalisation."""
        import coremltools as ct

        from .ane_lint import load_program

        path = Path(artifact_path)
        try:
            m = ct.models.MLModel(str(path), skip_model_load=True)
            spec = m.get_spec()
            prog = load_program(path)
        except Exception as e:  # any failure to read the package is the finding
            return [f"cannot load {path.name} as a Core ML spec: {type(e).__name__}: {e}"]
        if spec.WhichOneof("Type") != "mlProgram":
            return [f"not an mlProgram (got {spec.WhichOneof('Type')})"]
        types = _op_types(prog)
        image = json.loads(m.user_defined_metadata.get(f"{META_PREFIX}image_input", "false"))
        # with --image-input the baked (x - mean) / std is fused by coremltools into one input-side batch_norm;
        # a ChannelAffine the deploy model keeps on purpose (a BN in front of a padded depthwise conv, which no
        # fold reproduces at the borders: MNv4-Hybrid-L's strided K/V path) is fused into one batch_norm too
        bn = types.get("batch_norm", 0) - (_input_affine_ops(prog) if image else 0)
        affines = _channel_affines(state.model)
        problems = [f"{bn} batch_norm op(s) left (the deploy model keeps {affines} unfoldable per-channel "
                    f"affine(s))"] if bn > affines else []
        if state.spec is not None and state.spec.multi_branch and types.get("add", 0) > int(image):
            problems.append(f"multi-branch model has {types['add']} add op(s) after re-parameterization")
        problems += _precision_problems(prog, state.target.scheme, types)
        if f"{META_PREFIX}model" not in m.user_defined_metadata:
            problems.append("mobexport metadata missing from user_defined_metadata")
        return problems


def _op_types(prog) -> dict[str, int]:
    from collections import Counter

    from .ane_lint import _walk

    return dict(Counter(op.op_type for op in _walk(prog.functions["main"])))


def _input_affine_ops(prog) -> int:
    """batch_norm ops fed straight by the input (through the input cast / ImageType scaling)."""
    fn = prog.functions["main"]
    inputs = set(fn.inputs.values())

    def near_input(v, hops: int = 3) -> bool:
        if v in inputs:
            return True
        return hops > 0 and v.op is not None and v.op.op_type in ("cast", "mul") and near_input(v.op.inputs["x"],
                                                                                            hops - 1)

    return sum(1 for op in fn.operations if op.op_type == "batch_norm" and near_input(op.inputs["x"]))


def _channel_affines(model) -> int:
    """Per-channel affines the deploy model keeps on purpose (``exporter.layers.conv.ChannelAffine``)."""
    if model is None:
        return 0
    from mobexport.exporter.layers.conv import ChannelAffine

    return sum(isinstance(m, ChannelAffine) for m in model.modules())


def _precision_problems(prog, scheme: str, types: dict[str, int]) -> list[str]:
    from .ane_lint import lint_program

    if scheme == "fp16":
        islands = [f for f in lint_program(prog).findings if f.rule == "fp32-island"]
        return [f"{len(islands)} fp32 op(s) in the fp16 model, e.g. {islands[0].op_name}"] if islands else []
    problems = []
    if not any(types.get(q) for q in QUANT_OPS):
        problems.append(f"{scheme}: no int8 weight ops ({' / '.join(QUANT_OPS)})")
    if scheme == "w8a8" and not types.get("quantize"):
        problems.append("w8a8: no activation quantize ops")
    return problems
