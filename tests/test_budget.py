"""int8 with a fidelity budget (issue #24): the greedy loop (quantization/budget.py), the option rules (full-integer
targets and formats without a budget loop refuse it) and real tflite-w8a8 and tensorrt-w8a8 (Q/DQ placement)
budget exports of a small model whose manifest names the kept layers and whose validator applies the budget's
gate."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from mobexport.cli import main
from mobexport.converters import get_converter, resolve_target
from mobexport.converters.base import parse_options
from mobexport.exporter.errors import UsageError
from mobexport.quantization.budget import Budget, Candidate, greedy, rank, wilson

# ------------------------------------------------------------------------------------------ the greedy loop

def _fake(noise: dict[str, float], base: float = 1e-3):
    """evaluate(): logit noise power = base + the noise of every layer not kept; SQNR from it."""
    import math

    calls = []

    def evaluate(kept):
        calls.append([c.name for c in kept])
        left = base + sum(v for k, v in noise.items() if k not in {c.name for c in kept})
        sqnr = -10 * math.log10(left)
        return {"crops": {"sqnr_db": sqnr, "top1_agreement": 1.0 - left}}

    return evaluate, calls


def test_greedy_keeps_layers_until_the_budget_holds_and_names_them():
    noise = {"a": 0.05, "b": 0.02, "c": 0.002, "d": 0.0005}
    cands = [Candidate(k, k, "CONV_2D", cost=1.0, noise=v) for k, v in noise.items()]
    evaluate, calls = _fake(noise)
    res = greedy(cands, evaluate, Budget(min_sqnr_db=20.0), probe=1)
    # full int8: noise 0.0735 (11.3 dB); without a: 0.0235 (16.3 dB); without a, b: 0.0035 (24.6 dB) -> met
    assert res.met and [c.name for c in res.kept] == ["a", "b"]
    assert calls[0] == [] and res.start["crops"]["sqnr_db"] < 20 <= res.metrics["crops"]["sqnr_db"]
    assert [s["keep"] for s in res.steps] == ["a", "b"] and res.builds == 3


def test_greedy_prefers_measured_gain_per_cost():
    # the estimate says c first (cheap, wrongly thought noisy); measured, c gains nothing and b is the better buy
    noise = {"b": 0.05, "c": 0.0}
    cands = [Candidate("b", "b", "CONV_2D", cost=2.0, noise=0.01), Candidate("c", "c", "CONV_2D", cost=0.5,
                                                                             noise=0.01)]
    assert [c.name for c in rank(cands)] == ["c", "b"]
    evaluate, _ = _fake(noise)
    res = greedy(cands, evaluate, Budget(min_sqnr_db=25.0), probe=2)
    assert res.met and [c.name for c in res.kept] == ["b"]


def test_greedy_reports_an_unmet_budget():
    noise = {"a": 0.05, "b": 0.02}
    cands = [Candidate(k, k, "CONV_2D", cost=1.0, noise=v) for k, v in noise.items()]
    evaluate, _ = _fake(noise, base=0.01)  # the floor (20 dB) is below the budget whatever is kept
    res = greedy(cands, evaluate, Budget(min_sqnr_db=30.0, min_agreement=0.999), max_keep=5)
    assert not res.met and len(res.kept) == 2
    assert any("SQNR" in u for u in res.unmet) and any("agreement" in u for u in res.unmet)
    assert Budget(min_sqnr_db=30.0, min_agreement=0.95).tolerances() == {"min_sqnr_db": 30.0,
                                                                           "min_top1_agreement": 0.95}


def test_wilson_interval():
    lo, hi = wilson(390, 410)
    assert lo < 390 / 410 < hi and round(lo, 3) == 0.926 and round(hi, 3) == 0.968


# ------------------------------------------------------------------------------------------ who refuses it

def _parse(target: str, **opts):
    t = resolve_target(target)
    return parse_options(get_converter(t.format), t, opts)


def test_full_integer_targets_refuse_a_budget():
    with pytest.raises(UsageError, match="full integer.*cannot apply"):
        _parse("tflite-w8a8", full_integer=True, min_agreement=0.95)
    with pytest.raises(UsageError, match="applies to --int8 only"):
        _parse("tflite-fp32", min_agreement=0.95)
    with pytest.raises(UsageError, match=r"fraction in \(0, 1\]"):
        _parse("tflite-w8a8", min_agreement=95.0)
    g, _ = _parse("tflite-w8a8", min_agreement=0.95)
    assert g.budgeted and g.keep_as == "float"
    assert not _parse("tflite-w8a8", full_integer=True)[0].budgeted  # the default --int8: full integer


@pytest.mark.parametrize("target", ["coreml-w8a8"])
def test_formats_without_a_budget_loop_refuse_it(target):
    with pytest.raises(UsageError, match="is not built for coreml: it is a measured loop .* no Core ML runtime off "
                                         "macOS"):
        _parse(target, min_sqnr=30.0)


def test_tensorrt_budget_keeps_layers_as_float_only():
    g, _ = _parse("tensorrt-w8a8", min_agreement=0.95)
    assert g.budgeted and g.keep_as == "float"
    with pytest.raises(UsageError, match="keeps layers as float only, not int16"):
        _parse("tensorrt-w8a8", min_agreement=0.95, keep_as="int16")
    with pytest.raises(UsageError, match="applies to --int8 only"):
        _parse("tensorrt-fp16", min_sqnr=30.0)


def test_budgeted_structure_allows_float_islands_and_a_float_output_only():
    from mobexport.converters.tflite_budget import structure_problems

    assert structure_problems({"input_dtype": "int8", "output_dtype": "float32", "float_ops": {"CONV_2D": 1}}) == []
    assert structure_problems({"input_dtype": "float32", "output_dtype": "int8"}) == ["input is float32, not int8"]


def test_cli_refuses_a_budget_on_a_full_integer_target(capsys):
    assert main(["tflite", "mobilenetv3_small_100", "--int8", "--full-integer", "--min-agreement", "0.95"]) == 2
    assert "cannot apply" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------ a real export

class Small(nn.Module):
    """Four layers; the stem's channel 0 is scaled up 100x and the depthwise conv after it scales it back down, so
    the float function is the same but a per-tensor int8 activation between stem and dw loses the other channels:
    full int8 misses the budget and the segment stem + dw is the one to keep."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 16, 3, stride=2, padding=1)
        self.dw = nn.Conv2d(16, 16, 3, padding=1, groups=16)
        self.pw = nn.Conv2d(16, 32, 1)
        self.head = nn.Linear(32, 10)
        with torch.no_grad():
            self.stem.weight[0] *= 100
            self.stem.bias[0] *= 100
            self.dw.weight[0] /= 100

    def forward(self, x):
        x = torch.relu(self.stem(x))
        x = torch.relu(self.pw(torch.relu(self.dw(x))))
        return self.head(x.mean((2, 3)))


def _small_budget_export(tmp_path_factory, target: str):
    """``Small`` through ``target`` with a 36 dB SQNR budget, at most 3 segments kept."""
    from mobexport.converters.pipeline import export
    from mobexport.quantization.calibration import assets_images_dir

    conv = get_converter(resolve_target(target).format)
    if not conv.is_available().ok:
        pytest.skip(conv.is_available().reason)
    if assets_images_dir() is None:
        pytest.skip("int8 needs real calibration photos: run `make assets`")
    torch.manual_seed(0)
    out = tmp_path_factory.mktemp(target)
    return export(Small(), target, out_dir=out, input_shape=(1, 3, 32, 32), name="small",
                  options={"min_sqnr": 36.0, "max_keep": 3})


def _assert_gate_met_by_keeping_stem_and_dw(r) -> dict:
    """The budget report of a ``_small_budget_export`` result: met by keeping stem + dw first, timed, and the
    validator applying the same gate on the held-out photos. Returns the report."""
    b = r.manifest["int8_budget"]
    assert b["met"] and b["budget"] == "SQNR >= 36.0 dB" and b["keep_as"] == "float", b
    assert b["full_int8"]["crops"]["sqnr_db"] < 36.0 <= b["reached"]["crops"]["sqnr_db"]
    assert b["reached"]["photos"]["sqnr_db"] >= 36.0
    assert {"stem", "dw"} <= set(b["layers_kept"]) <= {"stem", "dw", "pw", "head"}
    assert b["steps"][0]["keep"] == "stem + dw" and b["segments_kept"][0]["layers"] == "stem + dw"
    assert b["latency"]["full_int8_ms"] > 0 and b["latency"]["budget_ms"] > 0
    assert r.status.value == "OK" and r.fidelity["policy"]["min_sqnr_db"] == 36.0
    assert r.fidelity["metrics"]["sqnr_db"] >= 36.0
    return b


@pytest.fixture(scope="module")
def budget_export(tmp_path_factory):
    return _small_budget_export(tmp_path_factory, "tflite-w8a8")


def test_budget_export_meets_the_gate_and_names_the_kept_layers(budget_export):
    r = budget_export
    b = _assert_gate_met_by_keeping_stem_and_dw(r)
    assert "LiteRT XNNPACK" in b["latency"]["protocol"]
    # float islands, int8 I/O: not full integer any more, and the manifest says which ops are float
    t = r.manifest["tflite"]
    assert t["input_dtype"] == "int8" and t["output_dtype"] == "int8" and t["float_ops"]
    assert not r.manifest.get("structure_problems")


def test_float_islands_take_the_float_models_own_biases(tmp_path):
    """Bias correction compensates int8 weight rounding; a layer kept in float has none, so its island must carry
    the float model's bias (with corrected biases everywhere, MobileNetV2 with every layer in float agreed with
    itself on only 0.934 of the crops). The graph's bias tensors are read back from the real .tflite files."""
    import numpy as np

    if not get_converter("tflite").is_available().ok:
        pytest.skip(get_converter("tflite").is_available().reason)
    import litert_torch
    from ai_edge_litert.interpreter import Interpreter

    from mobexport.converters.budget_loop import uncorrected
    from mobexport.converters.tflite_budget import FloatBiases, _bias_buffers
    from mobexport.quantization.bias_correction import bias_corrected

    torch.manual_seed(0)
    model = Small().eval()
    with torch.no_grad():
        model.dw.weight.mul_(37.1)  # large taps: a large rounding error, a visible correction
    images = [np.random.default_rng(i).normal(0.5, 1.0, (1, 3, 32, 32)).astype(np.float32) for i in range(4)]
    source, report = bias_corrected(model, images)
    assert report["max_bias_shift"] > 1e-4
    raw = uncorrected(source, model)
    x = (torch.from_numpy(images[0]),)
    paths = {}
    for name, m in {"corrected": source, "raw": raw}.items():
        paths[name] = tmp_path / f"{name}.tflite"
        litert_torch.convert(m, x).export(str(paths[name]))
    assert len(_bias_buffers(paths["corrected"])) == 4  # stem, dw, pw, head in graph order

    def biases(path):
        it = Interpreter(model_path=str(path))
        t = {d["index"]: d for d in it.get_tensor_details()}
        return [it.get_tensor(op["inputs"][2]) for op in it._get_ops_details()
                if op["op_name"] in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED") and t.get(op["inputs"][2])]

    mixed = biases(FloatBiases(paths["corrected"], paths["raw"]).write({1, 3}, tmp_path / "mixed.tflite"))
    want = [source.stem.bias, model.dw.bias, source.pw.bias, model.head.bias]
    for j, (got, ref) in enumerate(zip(mixed, want, strict=True)):
        np.testing.assert_allclose(got, ref.detach().numpy(), rtol=1e-6, atol=1e-6, err_msg=f"layer {j}")
    assert not np.allclose(source.dw.bias.detach().numpy(), model.dw.bias.detach().numpy(), atol=1e-6)


# ------------------------------------------------------------------------------------------ tensorrt-w8a8: Q/DQ placement

@pytest.fixture(scope="module")
def trt_budget_export(tmp_path_factory):
    # full int8 (Q/DQ everywhere) reaches ~22.5 dB: the per-tensor int8 input of dw loses all but channel 0
    return _small_budget_export(tmp_path_factory, "tensorrt-w8a8")


def test_tensorrt_budget_export_leaves_the_kept_layers_without_qdq(trt_budget_export):
    import numpy as np
    import onnx
    from onnx import numpy_helper

    from mobexport.benchmarks.schema import manifest_errors

    r = trt_budget_export
    b = _assert_gate_met_by_keeping_stem_and_dw(r)  # the validator: onnxruntime on the Q/DQ ONNX
    assert "onnxruntime" in b["latency"]["protocol"]
    assert not r.manifest.get("structure_problems") and manifest_errors(r.manifest) == []
    # the saved graph: kept Conv nodes read float tensors (no QuantizeLinear -> DequantizeLinear before them) and
    # carry the float model's own biases; the others are still quantized
    g = onnx.load(str(r.artifact)).graph
    producer = {o: n for n in g.node for o in n.output}
    kept = {n for s in b["segments_kept"] for n in s["nodes"]}

    def quantized(node):
        return any(t in producer and producer[t].op_type == "DequantizeLinear" and producer[t].input[0] in producer
                   and producer[producer[t].input[0]].op_type == "QuantizeLinear" for t in node.input)

    convs = [n for n in g.node if n.op_type in ("Conv", "Gemm")]
    assert [quantized(n) for n in convs if n.name in kept] == [False] * len([n for n in convs if n.name in kept])
    assert any(quantized(n) for n in convs if n.name not in kept)
    torch.manual_seed(0)
    own = Small()
    inits = {i.name: numpy_helper.to_array(i) for i in g.initializer}
    for n, module in zip([n for n in convs if n.name in kept][:2], (own.stem, own.dw), strict=True):
        np.testing.assert_allclose(inits[n.input[2]], module.bias.detach().numpy(), rtol=1e-6, atol=1e-6)


def test_kept_nodes_read_the_float_tensor_not_its_qdq_pair():
    """onnxruntime's quantizer wires every consumer of a quantized tensor to its DequantizeLinear, an excluded one
    too (a residual input read by a kept Conv and a quantized Add): the kept node is rewired to the float tensor,
    and a pair nothing reads any more goes with its scale and zero point."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    from mobexport.converters.tensorrt_budget import float_inputs_for

    inits = [numpy_helper.from_array(np.float32(0.1), "s"), numpy_helper.from_array(np.int8(0), "z"),
             numpy_helper.from_array(np.float32(0.2), "s2"), numpy_helper.from_array(np.int8(0), "z2"),
             numpy_helper.from_array(np.ones((1, 1, 1, 1), np.float32), "w")]
    nodes = [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["xq"], name="q"),
             helper.make_node("DequantizeLinear", ["xq", "s", "z"], ["xdq"], name="dq"),
             helper.make_node("Conv", ["xdq", "w"], ["c"], name="kept_conv"),
             helper.make_node("QuantizeLinear", ["c", "s2", "z2"], ["cq"], name="q2"),
             helper.make_node("DequantizeLinear", ["cq", "s2", "z2"], ["cdq"], name="dq2"),
             helper.make_node("Conv", ["cdq", "w"], ["c2"], name="kept_conv2"),
             helper.make_node("Add", ["xdq", "c2"], ["y"], name="add")]
    vi = lambda n: helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 1, 4, 4])  # noqa: E731
    m = helper.make_model(helper.make_graph(nodes, "g", [vi("x")], [vi("y")], inits),
                          opset_imports=[helper.make_opsetid("", 18)])
    assert float_inputs_for(m, {"kept_conv", "kept_conv2"}) == 2
    by = {n.name: n for n in m.graph.node}
    assert by["kept_conv"].input[0] == "x" and by["kept_conv2"].input[0] == "c" and by["add"].input[0] == "xdq"
    assert {"q", "dq"} <= set(by) and not {"q2", "dq2"} & set(by)  # x's pair still feeds the Add; c's went
    assert {i.name for i in m.graph.initializer} == {"s", "z", "w"}
