"""Roofline arithmetic on hand-computed toy layers and the sweep's limiting cases."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from mobexport.benchmarks.analysis import roofline
from mobexport.exporter.profile import count_macs, profile_ops


class ConvRelu(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(4, 8, 3, padding=1)  # with bias
        self.act = nn.ReLU()

    def forward(self, x):
        return self.act(self.conv(x))


class Toy(nn.Module):
    """conv3x3 4→8 (+ReLU, fused) → depthwise 3x3 → residual add → pointwise 8→16 → pool → fc 16→10."""

    def __init__(self):
        super().__init__()
        self.c1 = ConvRelu()
        self.dw = nn.Conv2d(8, 8, 3, padding=1, groups=8, bias=False)
        self.pw = nn.Conv2d(8, 16, 1, bias=False)
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        y = self.c1(x)
        y = y + self.dw(y)
        y = self.pw(y).mean((2, 3))
        return self.fc(y)


def _layers(precision="fp32"):
    recs = profile_ops(Toy().eval(), torch.randn(1, 4, 8, 8))
    return roofline.layers_from_records(recs, precision)


def test_hand_computed_macs_and_bytes():
    layers = _layers("fp32")
    by_type = {}
    for layer in layers:
        by_type.setdefault(layer.op_type, []).append(layer)
    conv = by_type["conv"][0]
    assert conv.macs == 8 * 8 * 8 * 4 * 9  # out elems × (Cin/g)·k·k
    assert conv.bytes == (8 * 4 * 9 + 8 + 4 * 64 + 8 * 64) * 4  # weights + bias + in + out, fp32
    dw = by_type["depthwise"][0]
    assert dw.macs == 8 * 64 * 9 and dw.bytes == (8 * 9 + 8 * 64 + 8 * 64) * 4
    pw = by_type["pointwise"][0]
    assert pw.macs == 16 * 64 * 8 and pw.bytes == (16 * 8 + 8 * 64 + 16 * 64) * 4
    fc = by_type["fc"][0]
    assert fc.macs == 16 * 10 and fc.bytes == (16 * 10 + 10 + 16 + 10) * 4
    add = [x for x in by_type["elementwise"] if x.op == "add"][0]
    assert add.macs == 0 and add.bytes == 3 * 8 * 64 * 4
    # the ReLU right after the conv is fused: no layer for it
    assert not [x for x in layers if x.op == "relu"]
    assert conv.intensity == pytest.approx(conv.macs / conv.bytes)


def test_precision_scales_bytes_not_macs():
    f32, f16, i8 = _layers("fp32"), _layers("fp16"), _layers("int8")
    for a, b, c in zip(f32, f16, i8, strict=True):
        assert a.macs == b.macs == c.macs
        assert a.bytes == 2 * b.bytes == 4 * c.bytes
    with pytest.raises(ValueError):
        _layers("fp64")


def test_layer_time_is_max_of_compute_and_memory():
    layer = roofline.Layer("l", "convolution", "conv", macs=1000, bytes=100)  # intensity 10
    assert layer.time(peak_macs=100.0, peak_bw=1.0) == pytest.approx(100.0)  # memory bound: 100 B / 1 B/s
    assert layer.time(peak_macs=100.0, peak_bw=1000.0) == pytest.approx(10.0)  # compute bound
    assert layer.time(peak_macs=100.0, peak_bw=math.inf) == pytest.approx(10.0)


def test_rp_zero_is_macs_only_and_large_rp_is_memory_bound():
    layers = _layers()
    peak = 1e9
    s = roofline.sweep(layers, rps=(0, 1e6), peak_macs=peak)
    total_macs = sum(x.macs for x in layers)
    assert s[0]["predicted_ms"] == pytest.approx(total_macs / peak * 1e3)
    total_bytes = sum(x.bytes for x in layers)
    bw = roofline.bandwidth_for_rp(peak, 1e6)
    assert s[1]["predicted_ms"] == pytest.approx(total_bytes / bw * 1e3, rel=1e-9)
    # the prediction never decreases as the ridge point grows
    full = roofline.sweep(layers, peak_macs=peak)
    assert all(a["predicted_ms"] <= b["predicted_ms"] for a, b in zip(full, full[1:], strict=False))


def test_rp_zero_orders_models_by_macs():
    small, big = nn.Sequential(nn.Conv2d(3, 8, 3)), nn.Sequential(nn.Conv2d(3, 64, 3))
    reports = {n: roofline.analyze(m, (3, 32, 32), rps=(0, 500)) for n, m in (("small", small), ("big", big))}
    ranking = roofline.rank_models(reports)
    assert ranking[0]["rp"] == 0 and ranking[0]["ranking"] == ["small", "big"]
    assert reports["big"]["sweep"][0]["predicted_ms"] / reports["small"]["sweep"][0]["predicted_ms"] == (
        pytest.approx(reports["big"]["macs"] / reports["small"]["macs"]))


def test_model_total_macs_match_the_zoo_counter():
    import mobexport

    name = "mobileone_s0" if "mobileone_s0" in mobexport.list_models() else mobexport.list_models()[0]
    spec = mobexport.get_spec(name)
    deploy = mobexport.reparameterize(mobexport.create_model(name))
    rep = roofline.analyze(deploy, spec.input_size, precision="int8")
    assert rep["macs"] == count_macs(deploy, spec.input_size)
    assert {s["rp"] for s in rep["sweep"]} == set(roofline.DEFAULT_RPS)
    assert all(layer["op_type"] in roofline.OP_TYPES for layer in rep["layers"])


def test_cli_roofline_json(capsys):
    import json

    from mobexport.cli import main

    assert main(["roofline", "mobilenetv3_small_100", "--precision", "int8", "--rp", "0,50,500", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [s["rp"] for s in out["sweep"]] == [0.0, 50.0, 500.0]
    assert out["macs"] > 0 and out["layers"]
    assert main(["roofline", "mobilenetv3_small_100", "--rp", "-1"]) == 2
    assert main(["roofline", "mobilenetv3_small_100", "--peak-macs", "1e12"]) == 2  # needs --peak-bw too


# ---------------------------------------------------------------- hierarchical roofline (issue #19)

_CEIL = {"peak_macs": 1e9, "bw": {"L1": 100e9, "L2": 50e9, "L3": 10e9, "DRAM": 1e9},
         "capacity": {"L1": 1e3, "L2": 1e6, "L3": 1e8, "DRAM": math.inf}}


def test_hierarchical_bound_counts_only_what_spills_past_each_level():
    fits_l2 = roofline.Layer("a", "conv2d", "pointwise", 0, 500_000)
    assert roofline.layer_bound(fits_l2, _CEIL) == pytest.approx(max(500_000 / 100e9, 499_000 / 50e9))
    spills = roofline.Layer("b", "conv2d", "pointwise", 0, 3_000_000)  # 2 MB past L2 at L3's 10 GB/s
    assert roofline.layer_bound(spills, _CEIL) == pytest.approx(2_000_000 / 10e9)
    compute = roofline.Layer("c", "conv2d", "conv", 10_000_000, 500)
    assert roofline.layer_bound(compute, _CEIL) == pytest.approx(10_000_000 / 1e9)


def test_analyze_with_ceilings_sums_layer_bounds_and_names_levels():
    model = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 16, 1)).eval()
    rep = roofline.analyze(model, (3, 32, 32), rps=(0,), ceilings=_CEIL)
    assert rep["bound_ms"] == pytest.approx(sum(d["bound_us"] for d in rep["layers"]) / 1e3)
    assert {d["level"] for d in rep["layers"]} <= {"L1", "L2", "L3", "DRAM"}
    flat = roofline.analyze(model, (3, 32, 32), rps=(0,), peak_macs=1e9, peak_bw=1e9)["bound_ms"]
    assert rep["bound_ms"] < flat  # cache-resident traffic is cheaper than DRAM traffic


def test_per_layer_efficiency_matches_mac_nodes_in_order_or_says_not():
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Conv2d(8, 8, 1)).eval()
    rep = roofline.analyze(model, (3, 16, 16), rps=(0,), ceilings=_CEIL)
    b0, b1 = (d["bound_us"] for d in rep["layers"] if d["op_type"] != "elementwise")
    prof = [{"layer": "c0", "op": "FusedConv", "min_us": 2 * b0}, {"layer": "r", "op": "Relu", "min_us": 1.0},
            {"layer": "c1", "op": "Conv", "min_us": b1 / 2}]
    e = roofline.per_layer_efficiency(rep, prof)
    assert e["matched"] and [r["node"] for r in e["layers"]] == ["c0", "c1"]
    assert [round(r["efficiency"], 6) for r in e["layers"]] == [0.5, 2.0] and e["below_bound"] == 1
    assert not roofline.per_layer_efficiency(rep, prof[:2])["matched"]


def test_execution_order_follows_the_trace_not_the_node_index(tmp_path):
    import json

    trace = [{"cat": "Node", "name": "b_kernel_time", "ts": 5}, {"cat": "Node", "name": "a_kernel_time", "ts": 9},
             {"cat": "Session", "name": "model_run", "ts": 1}]
    (tmp_path / "t.json").write_text(json.dumps(trace))
    rows = [{"layer": "a", "op": "Conv"}, {"layer": "b", "op": "Conv"}]
    assert [r["layer"] for r in roofline.execution_order(rows, tmp_path / "t.json")] == ["b", "a"]


def test_onnxruntime_ceilings_are_measured_and_ordered():
    pytest.importorskip("onnxruntime")
    from mobexport.benchmarks.analysis import hostcal

    c = hostcal.measure_onnxruntime(threads=1, repeats=3, dram_mb=16)
    assert c.runtime == "onnxruntime" and c.peak_macs > 1e8
    assert set(c.detail["mac_rates"]) == {*(f"conv{k}x{k}_{n}x{s}x{s}" for k, n, s in hostcal.CONV_PROBES),
                                            "matmul_256x512x512"}
    assert c.peak_macs == max(c.detail["mac_rates"].values())
    assert all(c.bw[a] >= c.bw[b] > 0 for a, b in zip(hostcal.LEVELS, hostcal.LEVELS[1:], strict=False))
    assert c.level_for(1) == "L1" and c.level_for(math.inf) == "DRAM"
