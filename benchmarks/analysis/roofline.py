"""Roofline latency model with a ridge-point sweep, as in the MobileNetV4 paper (§3, Fig. 3).

Per layer of the deploy graph: MACs, bytes moved (weights + input and output activations at the given
precision) and operational intensity (MACs/byte). A layer takes ``max(MACs / PeakMACs, Bytes / PeakMemBW)``;
a model takes the sum over its layers. The ridge point RP = PeakMACs / PeakMemBW (MACs per byte) is the only
hardware parameter that matters for *ranking*: we fix PeakMACs and sweep RP, so RP = 0 means infinite memory
bandwidth (time ∝ MACs) and a large RP means a memory-bound accelerator.

What is a "layer": every op that does MACs (conv, depthwise, pointwise, fully connected, attention matmul)
and every standalone elementwise op (residual add, layer scale, softmax, SE multiply …). Activation functions
that directly follow a MAC op are taken as fused into it (no extra bytes), as every mobile runtime does.
Pooling and reductions count as elementwise.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

DEFAULT_RPS = (0.0, 5.0, 10.0, 25.0, 50.0, 100.0, 200.0, 500.0)
BYTES_PER_ELEM = {"fp32": 4, "fp16": 2, "int8": 1}
OP_TYPES = ("conv", "depthwise", "pointwise", "fc", "matmul", "elementwise")
_FUSABLE_ACTS = {"relu", "relu_", "relu6", "hardtanh", "hardtanh_", "hardswish", "hardswish_", "hardsigmoid",
                 "silu", "silu_", "gelu", "sigmoid", "clamp", "clamp_min", "leaky_relu"}
_MAC_TYPES = {"conv", "depthwise", "pointwise", "fc", "matmul"}


@dataclass
class Layer:
    name: str
    op: str
    op_type: str  # one of OP_TYPES
    macs: int
    bytes: int

    @property
    def intensity(self) -> float:
        return self.macs / self.bytes if self.bytes else math.inf

    def time(self, peak_macs: float, peak_bw: float) -> float:
        """Seconds: max(compute time, memory time). ``peak_bw = inf`` → compute only."""
        t_mem = 0.0 if math.isinf(peak_bw) else self.bytes / peak_bw
        return max(self.macs / peak_macs, t_mem)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["intensity"] = None if math.isinf(self.intensity) else self.intensity
        return d


def layers_from_records(records, precision: str = "fp32") -> list[Layer]:
    """Turn profiler OpRecords (exporter.profile) into roofline layers at ``precision``."""
    if precision not in BYTES_PER_ELEM:
        raise ValueError(f"precision must be one of {sorted(BYTES_PER_ELEM)}, got {precision!r}")
    nbytes = BYTES_PER_ELEM[precision]
    out: list[Layer] = []
    prev_mac = False
    for r in records:
        kind = r.op_type if r.op_type in _MAC_TYPES else "elementwise"
        if kind == "elementwise" and prev_mac and r.op in _FUSABLE_ACTS:
            continue  # fused into the preceding conv / matmul
        moved = (r.weight_elems + r.in_elems + r.out_elems) * nbytes
        out.append(Layer(r.layer or "<model>", r.op, kind, int(r.macs), int(moved)))
        prev_mac = kind in _MAC_TYPES
    return out


def model_time(layers: list[Layer], peak_macs: float, peak_bw: float) -> float:
    return sum(layer.time(peak_macs, peak_bw) for layer in layers)


def bandwidth_for_rp(peak_macs: float, rp: float) -> float:
    """Memory bandwidth (bytes/s) that puts the ridge point at ``rp`` MACs/byte; RP = 0 → infinite."""
    if rp < 0:
        raise ValueError("ridge point must be ≥ 0")
    return math.inf if rp == 0 else peak_macs / rp


def sweep(layers: list[Layer], rps=DEFAULT_RPS, peak_macs: float = 1e12) -> list[dict]:
    """Predicted model time (ms) at each ridge point, with PeakMACs fixed."""
    return [{"rp": float(rp), "predicted_ms": model_time(layers, peak_macs, bandwidth_for_rp(peak_macs, rp)) * 1e3}
            for rp in rps]


def time_by_op_type(layers: list[Layer], peak_macs: float, peak_bw: float) -> dict[str, float]:
    """Milliseconds per op type (for the per-layer-type latency figure)."""
    acc = dict.fromkeys(OP_TYPES, 0.0)
    for layer in layers:
        acc[layer.op_type] += layer.time(peak_macs, peak_bw) * 1e3
    return acc


LEVELS = ("L1", "L2", "L3", "DRAM")


def _level(nbytes: float, c: dict) -> str:
    return next(lv for lv in LEVELS if nbytes <= c["capacity"][lv])


def layer_bound(layer: Layer, ceilings) -> float:
    """Seconds, hierarchical roofline: max(MACs / peak, each level's traffic / its bandwidth). A layer's
    working set is the bytes it moves (weights, input, output); the part of it past what the levels inside a
    level hold must cross that level: L1 carries all of it, L2 what exceeds L1, L3 what exceeds L2, DRAM what
    exceeds L3 (the activations of these models live in cache; only what does not fit goes further).
    ``ceilings``: ``hostcal.Ceilings`` (or its dict), calibrated in the runtime."""
    c = ceilings if isinstance(ceilings, dict) else ceilings.to_dict()
    t_mem, inner = 0.0, 0.0
    for lv in LEVELS:
        t_mem = max(t_mem, max(0.0, layer.bytes - inner) / c["bw"][lv])
        inner = c["capacity"][lv]
    return max(layer.macs / c["peak_macs"], t_mem)


def analyze(model, input_size, precision: str = "fp32", rps=DEFAULT_RPS, peak_macs: float = 1e12,
            peak_bw: float | None = None, ceilings=None) -> dict:
    """Roofline report for a deploy-form model: totals, per-layer list, RP sweep, and (if ``peak_bw`` is
    given) the bound at that concrete machine (peak_macs, peak_bw). With ``ceilings`` (``hostcal.Ceilings``
    calibrated in the runtime) the bound is the hierarchical one: each layer's bytes at the bandwidth of the
    cache level its working set fits in, MACs at the runtime's best kernel rate; ``bound_ms`` is that, each
    layer carries its ``bound_us`` and ``level``, and the ridge-point sweep is unchanged."""
    import torch

    from mobexport.exporter.profile import profile_ops

    records = profile_ops(model.eval(), torch.randn(1, *input_size))
    layers = layers_from_records(records, precision)
    report = {
        "precision": precision,
        "macs": sum(r.macs for r in records),
        "bytes": sum(layer.bytes for layer in layers),
        "peak_macs": peak_macs,
        "layers": [layer.to_dict() for layer in layers],
        "sweep": sweep(layers, rps, peak_macs),
        "by_op_type": {str(rp): time_by_op_type(layers, peak_macs, bandwidth_for_rp(peak_macs, rp))
                       for rp in (min(rps), max(rps))},
    }
    if peak_bw is not None:
        report["peak_bw"] = peak_bw
        report["ridge_point"] = peak_macs / peak_bw
        report["bound_ms"] = model_time(layers, peak_macs, peak_bw) * 1e3
    if ceilings is not None:
        c = ceilings if isinstance(ceilings, dict) else ceilings.to_dict()
        for d, layer in zip(report["layers"], layers, strict=True):
            d["bound_us"] = layer_bound(layer, c) * 1e6
            d["level"] = _level(layer.bytes, c)
        report["ceilings"] = c
        report["bound_ms"] = sum(d["bound_us"] for d in report["layers"]) / 1e3
    return report


def execution_order(profile: list[dict], trace_path) -> list[dict]:
    """``profile`` (onnxruntime ``read_profile`` rows, in node-index order) re-ordered as the nodes first ran in
    the raw trace: after graph fusion a node's index no longer follows the graph."""
    import json
    from pathlib import Path

    first: dict[str, float] = {}
    for ev in json.loads(Path(trace_path).read_text()):
        name = str(ev.get("name", ""))
        if ev.get("cat") == "Node" and name.endswith("_kernel_time"):
            first.setdefault(name.removesuffix("_kernel_time"), float(ev.get("ts", 0)))
    return sorted(profile, key=lambda row: first.get(row["layer"], float("inf")))


def per_layer_efficiency(report: dict, profile: list[dict]) -> dict:
    """Bound / measured for every MAC layer: the report's MAC layers (``analyze`` with ``ceilings``) and the
    profile's MAC nodes (a runtime's ``read_profile``: onnxruntime's Conv/FusedConv/Gemm/MatMul … in execution
    order) are matched one to one in order when their counts agree (a runtime fuses activations into the conv
    but keeps one node per conv); ``matched`` False and no rows otherwise."""
    mac = [d for d in report["layers"] if d["op_type"] in _MAC_TYPES]
    nodes = [n for n in profile if n["op"] in ONNX_MAC_OPS]
    if len(mac) != len(nodes) or not mac:
        return {"matched": False, "bound_layers": len(mac), "profiled_nodes": len(nodes), "layers": []}
    rows = [{"layer": d["name"], "op": d["op_type"], "node": n["layer"], "macs": d["macs"], "level": d["level"],
             "bound_us": d["bound_us"], "measured_us": n["min_us"],
             "efficiency": d["bound_us"] / n["min_us"] if n["min_us"] else None} for d, n in zip(mac, nodes, strict=True)]
    eff = sorted(r["efficiency"] for r in rows if r["efficiency"] is not None)
    return {"matched": True, "layers": rows, "median_efficiency": eff[len(eff) // 2] if eff else None,
            "max_efficiency": eff[-1] if eff else None, "below_bound": sum(e > 1 for e in eff)}


def rank_models(reports: dict[str, dict]) -> list[dict]:
    """For each RP of the sweep, the models ordered fastest first (model ranking across RPs)."""
    rps = [s["rp"] for s in next(iter(reports.values()))["sweep"]]
    out = []
    for i, rp in enumerate(rps):
        order = sorted(reports, key=lambda m: reports[m]["sweep"][i]["predicted_ms"])
        out.append({"rp": rp, "ranking": order})
    return out


# ---------------------------------------------------------------- measured (a runtime's per-layer profile) vs bound

# ONNX op types (onnxruntime's profile, fused kernels included) that do the MACs; every other node is elementwise
ONNX_MAC_OPS = frozenset({"Conv", "FusedConv", "NhwcFusedConv", "QLinearConv", "ConvInteger", "Gemm", "FusedGemm",
                          "MatMul", "FusedMatMul", "MatMulInteger", "QLinearMatMul"})


def measured_vs_bound(report: dict, profile: dict) -> dict:
    """The roofline bound of ``report`` (``analyze`` with ``peak_bw``) next to a per-layer profile written by
    ``mobexport bench --profile`` (``profile.onnxruntime.json``), in the two classes both can name: the MAC
    ops and the elementwise rest. Measured = the sum of each node's fastest profiled run, ms; the graph nodes
    and the roofline layers are matched by class, not one to one (a runtime fuses and re-lays out)."""
    if "peak_bw" not in report:
        raise ValueError("the report has no concrete machine: analyze(..., peak_bw=...)")
    bw = report["peak_bw"]
    bound = {"mac": 0.0, "elementwise": 0.0}
    for d in report["layers"]:
        layer = Layer(d["name"], d["op"], d["op_type"], d["macs"], d["bytes"])
        bound["mac" if layer.op_type in _MAC_TYPES else "elementwise"] += layer.time(report["peak_macs"], bw) * 1e3
    measured = {"mac": 0.0, "elementwise": 0.0}
    for node in profile["layers"]:
        measured["mac" if node["op"] in ONNX_MAC_OPS else "elementwise"] += node["min_us"] / 1e3
    rows = {k: {"measured_ms": measured[k], "bound_ms": bound[k]} for k in ("mac", "elementwise")}
    rows["total"] = {"measured_ms": sum(measured.values()), "bound_ms": sum(bound.values())}
    for r in rows.values():
        r["measured_over_bound"] = r["measured_ms"] / r["bound_ms"] if r["bound_ms"] else None
    return {"runtime": profile.get("runtime"), "peak_macs": report["peak_macs"], "peak_bw": bw, **rows}
