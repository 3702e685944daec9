"""``tflite-w8a8`` with a fidelity budget (``--int8 --min-agreement A`` / ``--min-sqnr D``, issue #24).

Starts from the converter's full-integer recipe (bias-corrected float .tflite, relative-MSE activation ranges,
ai-edge-quantizer ``static_wi8_ai8``) and keeps weighted ops (CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED) at
higher precision, chosen by ``quantization.budget.greedy``, until the gate holds on the held-out crops (every
held-out photo x 10 crops) *and* on the validator's held-out photos:

* ``--keep-as float`` (default): the op is left un-quantized (``no_quantize``), a float island between
  DEQUANTIZE / QUANTIZE; XNNPACK runs it in fp32. Its bias is the float model's own: the bias correction of the
  int8 graph (``quantization.bias_correction``) compensates int8 weight rounding, which a float op does not have,
  and left in place it would be an error of its own (with every weighted op kept in float, MobileNetV2 reached
  only 0.934 top-1 agreement with corrected biases against 0.990 with its own).
* ``--keep-as int16``: int16 activations with int8 weights (TFLite's 16x8 kernels; XNNPACK has none, so the
  op runs on the reference kernels: measure the latency).

I/O stays int8. The validator then judges the artifact with the budget's thresholds. The report
(``int8_budget`` in the manifest) names the kept layers (PyTorch module names), the agreement and SQNR reached,
the full-int8 start, each step, and the host latency (LiteRT XNNPACK, 1 thread) against full int8.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import sys
from pathlib import Path
from typing import Any

import numpy as np

from .base import Artifact, ExportState, GeneralOptions
from .budget_loop import QDQ_MACS, MeasuringBuilder, held_out_sets, report, run, say, uncorrected

WEIGHTED_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")


def _macs(op: dict, tensors: dict) -> int:
    out = int(np.prod(tensors[op["outputs"][0]]["shape"]))
    w = tensors[op["inputs"][1]]["shape"]
    if op["op_name"] == "CONV_2D":
        return out * int(np.prod(w[1:]))
    if op["op_name"] == "DEPTHWISE_CONV_2D":
        return out * int(w[1] * w[2])
    return out * int(w[-1])


def candidates(float_path: Path) -> list:
    """One ``Candidate`` per weighted op of the float .tflite, in graph order: the *segment* from that op up to and
    including the next weighted op, every op between them too (PAD, ADD, MEAN, ...). Keeping a single op would
    leave its output requantized for its int8 consumer; a segment keeps the tensor between the two layers in
    higher precision as well, and kept segments join into larger islands. ``key`` is the regex of the segment's
    ai-edge-quantizer scopes (their output tensor names); ``layers`` the weighted ops' positions; cost = MACs +
    quantize/dequantize of the activations entering and leaving the segment."""
    from ai_edge_litert.interpreter import Interpreter

    from mobexport.quantization.budget import Candidate

    it = Interpreter(model_path=str(float_path))
    tensors = {t["index"]: t for t in it.get_tensor_details()}
    ops = it._get_ops_details()
    weighted = [k for k, op in enumerate(ops) if op["op_name"] in WEIGHTED_OPS]
    out = []
    for j, k in enumerate(weighted):
        end = weighted[j + 1] if j + 1 < len(weighted) else len(ops) - 1
        seg = ops[k:end + 1]
        scopes = [";".join(tensors[i]["name"] for i in op["outputs"] if i >= 0) + ";" for op in seg]
        macs = sum(_macs(op, tensors) for op in seg if op["op_name"] in WEIGHTED_OPS)
        elems = sum(int(np.prod(tensors[i]["shape"])) for i in (seg[0]["inputs"][0], seg[-1]["outputs"][0]))
        c = Candidate(key="^(" + "|".join(re.escape(x) for x in scopes) + ")$",
                      name=f"{ops[k]['op_name']}#{k}", op="+".join(op["op_name"] for op in seg),
                      cost=macs + QDQ_MACS * elems)
        c.layers = [j] + ([j + 1] if j + 1 < len(weighted) else [])  # type: ignore[attr-defined]
        c.macs = macs  # type: ignore[attr-defined]
        out.append(c)
    return out


def structure_problems(info: dict) -> list[str]:
    """A budgeted artifact: int8 input; the output int8, or float where the last layer was kept in float (its
    logits are then not requantized: int8 logits tie near-equal classes)."""
    problems = []
    if info["input_dtype"] != "int8":
        problems.append(f"input is {info['input_dtype']}, not int8")
    if info["output_dtype"] not in ("int8", "float32"):
        problems.append(f"output is {info['output_dtype']}, not int8 or float32")
    return problems


def _bias_buffers(path: Path) -> list[tuple[int, bytes]]:
    """(buffer index, bytes) of each weighted op's bias, in graph order (the order ``candidates`` numbers)."""
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model(str(path))
    sg, codes = model.subgraphs[0], model.operatorCodes
    weighted = {getattr(schema.BuiltinOperator, n) for n in WEIGHTED_OPS}
    out = []
    for op in sg.operators:
        code = codes[op.opcodeIndex]
        if max(code.builtinCode, code.deprecatedBuiltinCode) in weighted:
            b = op.inputs[2] if len(op.inputs) > 2 else -1
            buf = sg.tensors[b].buffer if b >= 0 else -1
            out.append((buf, bytes(model.buffers[buf].data) if buf > 0 and model.buffers[buf].data is not None
                        else b""))
    return out


class FloatBiases:
    """The float islands' biases: ``corrected`` (the graph the int8 artifact is quantized from) with the biases of
    chosen weighted ops taken from ``raw`` (the same graph converted without bias correction). Both graphs' bias
    buffers are read once, here; refuses graphs that differ in structure."""

    def __init__(self, corrected: Path, raw: Path):
        self.corrected, self.have, self.want = corrected, _bias_buffers(corrected), _bias_buffers(raw)
        if len(self.have) != len(self.want) or any(len(a[1]) != len(b[1]) for a, b in zip(self.have, self.want,
                                                                                         strict=True)):
            raise RuntimeError("float islands: the corrected and uncorrected float graphs differ in structure")
        self.shared = [b for b, _ in self.have if b > 0]

    def write(self, layers: set[int], dst: Path) -> Path:
        """``corrected`` with the weighted ops numbered ``layers`` given their uncorrected biases, written to
        ``dst``."""
        from ai_edge_litert.tools import flatbuffer_utils

        from .tflite_xnnpack import write_flatbuffer

        model = flatbuffer_utils.read_model(str(self.corrected))
        for j in sorted(layers):
            buf, data = self.have[j][0], self.want[j][1]
            if buf <= 0 or self.shared.count(buf) > 1:
                continue  # no bias, or one shared by several ops: left corrected
            model.buffers[buf].data = np.frombuffer(data, np.uint8).copy()
        write_flatbuffer(model, dst)
        return dst


class _Builder(MeasuringBuilder):
    """Builds the budgeted .tflite for a set of kept ops. ``raw_path``: the same float graph without bias
    correction (where kept layers are float, their biases come from it)."""

    def __init__(self, state: ExportState, float_path: Path, qsvs, keep_as: str, sets: dict,
                 raw_path: Path | None = None):
        super().__init__(state, sets)
        self.float_path, self.qsvs, self.keep_as = float_path, qsvs, keep_as
        self.biases = FloatBiases(float_path, raw_path) if keep_as == "float" and raw_path is not None else None

    def build(self, kept: list) -> Path:
        from ai_edge_quantizer import qtyping, quantizer, recipe

        from .tflite import _aeq_large_weights, write_quantized
        from .tflite_xnnpack import lower_int8_hard_swish

        key = tuple(c.key for c in kept)
        if key in self.paths:
            return self.paths[key]
        path = self.float_path.with_name(f"budget-{len(self.paths)}.tflite")
        src = self.float_path
        if kept and self.biases is not None:
            src = self.biases.write({j for c in kept for j in c.layers}, path.with_suffix(".src.tflite"))
        qt = quantizer.Quantizer(str(src), recipe.static_wi8_ai8())
        every = qtyping.TFLOperationName.ALL_SUPPORTED
        for c in kept:
            if self.keep_as == "float":
                qt.update_quantization_recipe(regex=c.key, operation_name=every, algorithm_key="no_quantize")
            else:
                qt.add_static_config(c.key, every, activation_num_bits=16, weight_num_bits=8)
        verbose = os.environ.get("MOBEXPORT_VERBOSE") == "1"
        with contextlib.redirect_stdout(sys.stderr if verbose else io.StringIO()), _aeq_large_weights():
            write_quantized(qt.quantize(self.qsvs, enable_progress_bar=False), path)
        if src != self.float_path:
            src.unlink(missing_ok=True)
        lower_int8_hard_swish(path)
        self.paths[key] = path
        return path

    def runner(self, path: Path):
        from .tflite import TFLiteConverter

        return TFLiteConverter().load(Artifact(self.state.target.id, path), threads=1)


def quantize_with_budget(state: ExportState, out_path: Path) -> dict[str, Any]:
    """The budget loop; writes the chosen artifact to ``out_path``; returns the ``quantization`` report and
    puts the ``int8_budget`` report and the validator thresholds into ``state``."""
    import torch

    from mobexport.exporter.errors import UsageError
    from mobexport.quantization.deploy import int8_source_model

    from .tflite import _activation_qsvs, _convert_litert, _nhwc

    general = GeneralOptions.of(state)
    if _nhwc(state):
        raise UsageError("--nhwc with a fidelity budget is not built (the budget loop feeds NCHW crops)")
    model, prep, plan = int8_source_model(state.model, state.calibration, range_search=general.range_search)
    float_path = out_path.with_name(out_path.stem + ".float.tflite")
    _convert_litert(state, model=model).export(str(float_path))
    raw_path = None
    if general.keep_as == "float":  # the same graph with the float model's own biases, for the float islands
        raw_path = out_path.with_name(out_path.stem + ".raw.tflite")
        _convert_litert(state, model=uncorrected(model, state.model)).export(str(raw_path))
    log = say(state)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # hundreds of single-image forwards: intra-op threads only add contention
    try:
        qsvs = _activation_qsvs(float_path, state, plan)
        log("activation ranges measured")
        b = _Builder(state, float_path, qsvs, general.keep_as, held_out_sets(state), raw_path)
        cands = candidates(float_path)
        res, full_ms, budget_ms, matched = run(state, b, cands, "weighted ops", out_path, log)
    finally:
        torch.set_num_threads(threads)
        for p in [float_path, raw_path, *b.paths.values()] if "b" in locals() else [float_path, raw_path]:
            if p is not None:
                p.unlink(missing_ok=True)
    rep = report(state, res, cands, b.sets, full_ms, budget_ms, matched, "LiteRT XNNPACK", general.keep_as)
    return {"recipe": f"ai-edge-quantizer static_wi8_ai8, {len(rep['layers_kept'])} layer(s) kept as "
                      f"{general.keep_as} (fidelity budget)", **prep, "activation_ranges": "mse (per-image relative)"}
