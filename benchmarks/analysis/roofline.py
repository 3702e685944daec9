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


def analyze(model, input_size, precision: str = "fp32", rps=DEFAULT_RPS, peak_macs: float = 1e12,
            peak_bw: float | None = None) -> dict:
    """Roofline report for a deploy-form model: totals, per-layer list, RP sweep, and (if ``peak_bw`` is
    given) the bound at that concrete machine (peak_macs, peak_bw)."""
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
    return report


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
