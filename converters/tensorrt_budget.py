"""``tensorrt-w8a8`` with a fidelity budget (``--int8 --min-agreement A`` / ``--min-sqnr D``, issue #24).

Starts from the converter's Q/DQ recipe (bias-corrected float ONNX, symmetric relative-MSE activation ranges,
onnxruntime ``quantize_static``, ``TensorRTConverter._int8``) and leaves weighted nodes (Conv, Gemm, MatMul with
an initializer weight) without Q/DQ on their inputs, chosen by ``quantization.budget.greedy``, until the gate holds
on the held-out crops (every held-out photo x 10 crops) *and* on the validator's held-out photos. A strongly typed
TensorRT engine runs a layer with no Q/DQ on its inputs in the network's float precision, so only
``--keep-as float`` exists (int16 is not a TensorRT activation type).

* Candidates are *segments*, as for TFLite (``tflite_budget``): a weighted node up to and including the next one,
  every node between (Relu/Clip, Add, GlobalAveragePool, ...), all given to ``quantize_static`` as
  ``nodes_to_exclude``; the tensor between two kept layers stays float, and a kept node that onnxruntime's
  quantizer still wired to the DequantizeLinear of a tensor shared with a quantized consumer (a residual input)
  is rewired to the float tensor.
* A kept layer carries the float model's own bias (initializer ``input[2]`` of Conv/Gemm, or the Add after a
  MatMul), taken from the same graph exported without bias correction: the correction compensates int8 weight
  rounding, which a float layer does not have (see ``tflite_budget``).

The artifact is measured with onnxruntime (CPU, 1 thread), which runs Q/DQ graphs; no TensorRT engine is built in
the loop, so the report's latency is onnxruntime's, a proxy for the engine's. The validator then judges the
artifact with the budget's thresholds.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np

from .base import ExportState, GeneralOptions
from .budget_loop import QDQ_MACS, MeasuringBuilder, held_out_sets, report, run, say, uncorrected

WEIGHTED = ("Conv", "Gemm", "MatMul")


def weighted_nodes(graph) -> list[int]:
    """Positions (graph order) of the Conv / Gemm / MatMul nodes whose weight (input 1) is an initializer."""
    inits = {i.name for i in graph.initializer}
    return [k for k, n in enumerate(graph.node) if n.op_type in WEIGHTED and len(n.input) > 1 and n.input[1] in inits]


def _shapes(model) -> dict[str, list[int]]:
    import onnx

    m = onnx.shape_inference.infer_shapes(model)
    g = m.graph
    return {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
            for v in [*g.input, *g.value_info, *g.output]}


def _macs(node, shapes: dict, inits: dict) -> int:
    out = shapes.get(node.output[0]) or [0]
    w = list(inits[node.input[1]].dims)
    elems = int(np.prod(out))
    if node.op_type == "Conv":
        return elems * int(np.prod(w[1:]))
    return elems * (int(np.prod(w)) // max(out[-1], 1))  # Gemm / MatMul: x K (weight size / output features)


def candidates(model) -> list:
    """One ``Candidate`` per weighted node of the float ONNX ``model``, in graph order: the segment from it up to
    and including the next weighted node (``key``: the segment's node names); ``layers``: the weighted nodes'
    positions among the weighted nodes; cost = MACs + quantize/dequantize of the activations entering and
    leaving the segment."""
    from mobexport.quantization.budget import Candidate

    g = model.graph
    nodes, inits, shapes = list(g.node), {i.name: i for i in g.initializer}, _shapes(model)
    if any(not n.name for n in nodes) or len({n.name for n in nodes}) != len(nodes):
        raise RuntimeError("tensorrt budget: the float ONNX has unnamed or duplicate node names (nodes_to_exclude "
                           "needs names)")
    weighted = weighted_nodes(g)
    out = []
    for j, k in enumerate(weighted):
        end = weighted[j + 1] if j + 1 < len(weighted) else len(nodes) - 1
        seg = nodes[k:end + 1]
        macs = sum(_macs(n, shapes, inits) for n in seg if n.op_type in WEIGHTED and n.input[1] in inits)
        elems = sum(int(np.prod(shapes.get(t) or [0])) for t in (seg[0].input[0], seg[-1].output[0]))
        c = Candidate(key=tuple(n.name for n in seg), name=f"{nodes[k].op_type}#{k}",
                      op="+".join(n.op_type for n in seg), cost=macs + QDQ_MACS * elems)
        c.layers = [j] + ([j + 1] if j + 1 < len(weighted) else [])  # type: ignore[attr-defined]
        c.macs = macs  # type: ignore[attr-defined]
        out.append(c)
    return out


def _bias_names(graph) -> list[str | None]:
    """The bias initializer of each weighted node, in graph order: Conv/Gemm ``input[2]``; a MatMul's is the
    initializer operand of the Add that takes its output (None where there is none)."""
    inits = {i.name for i in graph.initializer}
    consumers: dict[str, list] = {}
    for n in graph.node:
        for t in n.input:
            consumers.setdefault(t, []).append(n)
    out: list[str | None] = []
    for k in weighted_nodes(graph):
        n = graph.node[k]
        if n.op_type in ("Conv", "Gemm"):
            out.append(n.input[2] if len(n.input) > 2 and n.input[2] in inits else None)
            continue
        adds = [a for a in consumers.get(n.output[0], []) if a.op_type == "Add"]
        out.append(next((t for a in adds[:1] for t in a.input if t in inits), None))
    return out


def check_same_graph(corrected, raw) -> None:
    """The corrected and uncorrected float ONNX must be the same graph (node names and types, initializer names
    and shapes): the kept layers' biases are swapped by name."""
    a, b = corrected.graph, raw.graph
    nodes = [(n.name, n.op_type) for n in a.node] == [(n.name, n.op_type) for n in b.node]
    inits = {i.name: tuple(i.dims) for i in a.initializer} == {i.name: tuple(i.dims) for i in b.initializer}
    if not (nodes and inits):
        raise RuntimeError("tensorrt budget: the float ONNX exported with and without bias correction differ in "
                           f"{'nodes' if not nodes else 'initializers'}; the float islands' biases cannot be "
                           "taken by name")


def with_float_biases(corrected, raw, layers: set[int]):
    """A copy of ``corrected`` (ModelProto) with the biases of the weighted nodes numbered ``layers`` taken from
    ``raw`` (checked by ``check_same_graph``)."""
    import onnx

    m = onnx.ModelProto.FromString(corrected.SerializeToString())
    names = _bias_names(m.graph)
    want = {names[j] for j in layers if names[j] is not None}
    src = {i.name: i for i in raw.graph.initializer if i.name in want}
    for i, init in enumerate(m.graph.initializer):
        if init.name in src:
            m.graph.initializer[i].CopyFrom(src[init.name])
    return m


def float_inputs_for(model, kept: set[str]) -> int:
    """Rewire the inputs of the ``kept`` nodes that come from an activation's QuantizeLinear -> DequantizeLinear
    pair to the float tensor (onnxruntime's quantizer rewires every consumer of a quantized tensor, a kept one
    too), then drop the pairs nothing reads any more. Returns how many inputs were rewired."""
    g = model.graph
    producer = {o: n for n in g.node for o in n.output}
    rewired = 0
    for n in g.node:
        if n.name not in kept:
            continue
        for i, t in enumerate(n.input):
            dq = producer.get(t)
            q = producer.get(dq.input[0]) if dq is not None and dq.op_type == "DequantizeLinear" else None
            if q is not None and q.op_type == "QuantizeLinear":
                n.input[i] = q.input[0]
                rewired += 1
    while True:
        read = {t for n in g.node for t in n.input} | {o.name for o in g.output}
        dead = [n for n in g.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")
                and not any(o in read for o in n.output)]
        if not dead:
            break
        for n in dead:
            g.node.remove(n)
    read = {t for n in g.node for t in n.input}
    for init in [i for i in g.initializer if i.name not in read]:
        g.initializer.remove(init)
    return rewired


class _Builder(MeasuringBuilder):
    """Builds the budgeted Q/DQ ONNX for a set of kept segments; measured with onnxruntime (CPU, 1 thread)."""

    def __init__(self, state: ExportState, float_model, raw_model, ranges, sets: dict, folder: Path):
        super().__init__(state, sets)
        self.float_model, self.raw_model, self.ranges, self.folder = float_model, raw_model, ranges, folder

    def build(self, kept: list) -> Path:
        import onnx

        from .tensorrt import quantize_qdq

        key = tuple(sorted(n for c in kept for n in c.key))
        if key in self.paths:
            return self.paths[key]
        path = self.folder / f"budget-{len(self.paths)}.onnx"
        src = path.with_suffix(".src.onnx")
        m = self.float_model
        if kept and self.raw_model is not None:
            m = with_float_biases(self.float_model, self.raw_model, {j for c in kept for j in c.layers})
        onnx.save(m, str(src))
        try:
            quantize_qdq(src, path, self.state.calibration, self.state.spec, ranges=self.ranges, exclude=key)
        finally:
            src.unlink(missing_ok=True)
        if key:
            q = onnx.load(str(path))
            float_inputs_for(q, set(key))
            onnx.save(q, str(path))
        self.paths[key] = path
        return path

    @staticmethod
    def runner(path: Path):
        from .runtimes import get_runtime

        return get_runtime("onnxruntime").load(path, threads=1)


def quantize_with_budget(state: ExportState, out_path: Path) -> dict[str, Any]:
    """The budget loop for ``tensorrt-w8a8``; writes the chosen Q/DQ ONNX to ``out_path``; returns the
    ``quantization`` report and puts the ``int8_budget`` report and the validator thresholds into ``state``."""
    import tempfile

    import torch

    from mobexport.quantization.deploy import int8_source_model

    from .onnx import build_onnx
    from .tensorrt import activation_ranges

    general = GeneralOptions.of(state)
    model, prep, plan = int8_source_model(state.model, state.calibration, range_search=general.range_search,
                                          symmetric=True)
    log = say(state)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # hundreds of single-image forwards: intra-op threads only add contention
    folder = Path(tempfile.mkdtemp(prefix=out_path.stem + ".budget.", dir=out_path.parent))
    try:
        float_path = folder / "float.onnx"
        float_model, _ = build_onnx(state, model, float_path)
        raw_path = folder / "raw.onnx"  # the same graph with the float model's own biases, for the float islands
        raw_model, _ = build_onnx(state, uncorrected(model, state.model), raw_path)
        check_same_graph(float_model, raw_model)
        ranges = activation_ranges(float_path, state.calibration, state.spec, plan)
        log("activation ranges measured")
        b = _Builder(state, float_model, raw_model, ranges, held_out_sets(state), folder)
        cands = candidates(float_model)
        res, full_ms, budget_ms, matched = run(state, b, cands, "weighted nodes", out_path, log)
    finally:
        torch.set_num_threads(threads)
        shutil.rmtree(folder, ignore_errors=True)
    rep = report(state, res, cands, b.sets, full_ms, budget_ms, matched,
                 "onnxruntime CPU (Q/DQ graph; a proxy: no TensorRT engine is built in the loop)",
                 "float without Q/DQ", segment_extra=lambda c: {"nodes": list(c.key)})
    return {"recipe": f"onnxruntime quantize_static (QDQ) of the bias-corrected deploy model, "
                      f"{len(rep['layers_kept'])} layer(s) left without Q/DQ (fidelity budget)",
            "detail": "symmetric int8 per-channel weights; symmetric int8 activations on the inputs of "
                      "Conv/Gemm/MatMul/Add outside the kept segments (relative-MSE ranges over the calibration "
                      "photos); kept segments float with the float model's own biases; float logits",
            **prep, "activation_ranges": "mse-symmetric (per-image relative)",
            "calibration_images": len(state.calibration)}
