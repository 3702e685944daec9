"""Neural Engine placement lint: a static walk over a Core ML MIL program, no runtime needed.

Core ML decides at load time which ops run on the Apple Neural Engine (ANE); the only ground truth is
``MLComputePlan`` on macOS (see ``converters.coreml.compute_plan_placement``). On Linux the best we can do is
flag what is known to keep an op off the ANE or to split the graph into ANE/CPU segments. Every finding names
the op (MIL op name) and, where the converter recorded it, the PyTorch layer it comes from.

Rules and their sources (heuristics; the ANE is undocumented and changes between chip generations):

- ``flexible-shape``: a symbolic (range/enumerated) input dimension. Apple's coremltools guide "Flexible Input
  Shapes" notes that range-flexible models run on CPU/GPU only; mobexport exports fixed shapes by default.
- ``rank>4``: the ANE works on rank ≤ 4 (N, C, H, W) buffers; Apple's "Deploying Transformers on the Apple
  Neural Engine" (ml-ane-transformers, 2022) rewrites models to 4-D channels-first tensors for this reason.
- ``unsupported-op``: op types with no ANE path. Sources: hollance/neural-engine ``docs/unsupported-layers.md``
  (gather-type layers, RNN/LSTM/GRU, custom layers, control flow) and the ane-guide "capability surface"
  chapter (no hardware path for reduce_prod, the scatter family, recurrent cells). See ``UNSUPPORTED_OPS``.
- ``non-const-weight``: conv/linear whose weight is computed at run time; the ANE compiler bakes weights in at
  compile time, so such layers fall back (ml-ane-transformers; Orion paper arXiv 2603.06728, MIL restrictions).
- ``int-arith``: integer (int32/int64/int16) compute; the ANE computes in fp16 (and int8 for quantized
  conv/matmul inputs), integer arithmetic runs on the CPU.
- ``fp32-island``: an fp32 op in an fp16 model (ANE has no fp32 datapath): a device switch at each island.
  The fp32→fp16 cast on the input and the fp16→fp32 cast on the output are the expected boundary, not flagged.
- ``large-dim``: a tensor dimension above 16384 (the per-dimension buffer limit reported by the
  hollance/neural-engine notes and ane-guide Appendix A); such tensors are split or sent to the GPU/CPU.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

MAX_DIM = 16384
MAX_RANK = 4

UNSUPPORTED_OPS = frozenset({
    # gathers / scatters with run-time indices
    "gather", "gather_nd", "gather_along_axis", "scatter", "scatter_nd", "scatter_along_axis",
    # recurrent cells and control flow
    "lstm", "gru", "rnn", "while_loop", "cond",
    # sorting / selection, detection post-processing, randomness
    "topk", "argsort", "non_maximum_suppression", "random_uniform", "random_normal", "random_bernoulli",
    "random_categorical", "reduce_prod", "non_zero", "band_part", "cumsum",
})
WEIGHTED_OPS = {"conv": "weight", "conv_transpose": "weight", "linear": "weight"}
CONST_PREFIXES = ("const", "constexpr_")
FOLDABLE = {"dequantize", "cast", "reshape", "transpose", "expand_dims", "squeeze"}
IMAGE_PREPROCESS_SUFFIXES = ("__scaled__", "__biased__")
INT_TYPES = ("int16", "int32", "int64", "uint16", "uint32", "uint64")

RULES = {
    "flexible-shape": "flexible (symbolic) input shape: Core ML keeps the model off the ANE",
    "rank>4": "tensor of rank > 4 (the ANE works on rank <= 4)",
    "unsupported-op": "op type without an ANE implementation",
    "non-const-weight": "conv/linear weight computed at run time (ANE needs constant weights)",
    "int-arith": "integer arithmetic (runs on the CPU)",
    "fp32-island": "fp32 op inside an fp16 model (device switch)",
    "large-dim": f"tensor dimension > {MAX_DIM}",
}


@dataclass(frozen=True)
class Finding:
    rule: str
    op_type: str
    op_name: str
    layer: str
    detail: str


@dataclass
class LintReport:
    ops_total: int = 0
    findings: list[Finding] = field(default_factory=list)

    @property
    def ops_flagged(self) -> int:
        return len({f.op_name for f in self.findings})

    @property
    def ok(self) -> bool:
        return not self.findings

    def reasons(self) -> Counter:
        return Counter(f.rule for f in self.findings)

    def summary(self) -> str:
        top = ", ".join(f"{r}×{n}" for r, n in self.reasons().most_common(4)) or "none"
        return f"ANE lint: {self.ops_total} ops, {self.ops_flagged} flagged ({top})"

    def to_dict(self, max_findings: int = 200) -> dict[str, Any]:
        return {
            "ops_total": self.ops_total,
            "ops_flagged": self.ops_flagged,
            "reasons": dict(self.reasons()),
            "findings": [asdict(f) for f in self.findings[:max_findings]],
            "findings_truncated": max(0, len(self.findings) - max_findings),
            "rules": RULES,
            "note": "static heuristics (no runtime); real placement only from MLComputePlan on macOS",
        }


def _type_name(dtype) -> str:
    from coremltools.converters.mil.mil import types

    try:
        return types.builtin_to_string(dtype)
    except Exception:  # non-builtin (e.g. a list or dict type)
        return str(dtype)


def _layer_of(op) -> str:
    """The PyTorch module path the op came from (jit.trace records it in the op's scopes), else ''."""
    scopes = getattr(op, "scopes", None) or {}
    for source, names in scopes.items():
        if getattr(source, "name", "") == "TORCHSCRIPT_MODULE_NAME":
            return ".".join(names[:-1])  # one entry per module level, then the TorchScript value name
    return ""


def _is_const(var, depth: int = 0) -> bool:
    op = var.op
    if op is None or depth > 8:
        return False
    if op.op_type.startswith(CONST_PREFIXES):
        return True
    x = op.inputs.get("x") if op.op_type in FOLDABLE else None
    return x is not None and _is_const(x, depth + 1)


def _is_boundary_cast(op, fn) -> bool:
    """The input/output casts, and the fp32 scale/bias coremltools inserts for an ImageType input."""
    if op.name.endswith(IMAGE_PREPROCESS_SUFFIXES):
        return True
    if op.op_type != "cast":
        return False
    inputs = set(fn.inputs.values())
    return op.inputs["x"] in inputs or any(o in fn.outputs for o in op.outputs)


def _shape_findings(op, layer: str) -> list[Finding]:
    from coremltools.converters.mil.mil.types.symbolic import is_symbolic

    out = []
    for v in op.outputs:
        shape = getattr(v, "shape", None) or ()
        if len(shape) > MAX_RANK:
            out.append(Finding("rank>4", op.op_type, op.name, layer, f"{v.name}: rank {len(shape)} {shape}"))
        if any(not is_symbolic(d) and int(d) > MAX_DIM for d in shape):
            out.append(Finding("large-dim", op.op_type, op.name, layer, f"{v.name}: shape {shape}"))
    return out


def _dtype_findings(op, fn, layer: str, expect_fp16: bool) -> list[Finding]:
    out = []
    names = {_type_name(v.dtype) for v in op.outputs}
    ints = sorted(n for n in names if n in INT_TYPES)
    if ints:
        out.append(Finding("int-arith", op.op_type, op.name, layer, f"outputs {', '.join(ints)}"))
    if expect_fp16 and "fp32" in names and not _is_boundary_cast(op, fn):
        out.append(Finding("fp32-island", op.op_type, op.name, layer, "outputs fp32"))
    return out


def _op_findings(op, fn, expect_fp16: bool) -> list[Finding]:
    layer = _layer_of(op)
    found = _shape_findings(op, layer) + _dtype_findings(op, fn, layer, expect_fp16)
    if op.op_type in UNSUPPORTED_OPS:
        found.append(Finding("unsupported-op", op.op_type, op.name, layer, "no ANE kernel"))
    wname = WEIGHTED_OPS.get(op.op_type)
    if wname and wname in op.inputs and not _is_const(op.inputs[wname]):
        found.append(Finding("non-const-weight", op.op_type, op.name, layer,
                             f"weight {op.inputs[wname].name} is computed at run time"))
    return found


def _walk(block):
    for op in block.operations:
        yield op
        for inner in getattr(op, "blocks", ()) or ():
            yield from _walk(inner)


def lint_program(prog, *, expect_fp16: bool = True, function: str = "main") -> LintReport:
    """Lint a MIL ``Program`` (``mlmodel._mil_program`` after ``ct.convert`` or one reloaded from a spec)."""
    from coremltools.converters.mil.mil.types.symbolic import is_symbolic

    fn = prog.functions[function]
    report = LintReport()
    for name, var in fn.inputs.items():
        if any(is_symbolic(d) for d in var.shape):
            report.findings.append(Finding("flexible-shape", "input", name, "", f"input shape {var.shape}"))
    for op in _walk(fn):
        if op.op_type.startswith(CONST_PREFIXES):
            continue
        report.ops_total += 1
        report.findings.extend(_op_findings(op, fn, expect_fp16))
    return report


def load_program(path: str | Path):
    """Reload the MIL program of a saved .mlpackage (works on Linux: no model compilation)."""
    import coremltools as ct
    from coremltools.converters.mil.frontend.milproto.load import load

    m = ct.models.MLModel(str(path), skip_model_load=True)
    spec = m.get_spec()
    return load(spec, specification_version=spec.specificationVersion, file_weights_dir=m.weights_dir)


def lint_mlpackage(path: str | Path, *, expect_fp16: bool = True) -> LintReport:
    """Lint a saved model. Layer names are lost on save (scopes are not serialised): op names remain."""
    return lint_program(load_program(path), expect_fp16=expect_fp16)
