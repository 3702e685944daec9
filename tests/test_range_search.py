"""Loss-aware activation ranges (quantization/range_search.py): the search on a real traced model, and the
hand-over to a backend by tensor values. The gain on real weights: tests/test_int8_real.py."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from mobexport.quantization.range_search import RangePlan, _collect, _kl, _points, _Sim, search_ranges


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, 2, 1)
        self.act = nn.ReLU6()
        self.dw = nn.Conv2d(8, 8, 3, 1, 1, groups=8)
        self.act2 = nn.ReLU6()
        self.pw = nn.Conv2d(8, 16, 1)
        self.head = nn.Linear(16, 10)

    def forward(self, x):
        y = self.pw(self.act2(self.dw(self.act(self.stem(x)))))
        y = y + y.mean(dim=(2, 3), keepdim=True)
        return self.head(torch.flatten(y.mean(dim=(2, 3)), 1))


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    model = Tiny().eval()
    with torch.no_grad():
        model.dw.weight.mul_(8.0)  # large depthwise taps: the stem's int8 noise is amplified
    rng = np.random.default_rng(0)
    images = [rng.standard_normal((1, 3, 32, 32)).astype(np.float32) for _ in range(10)]
    return model, images


def test_points_are_what_backends_quantize(tiny):
    from mobexport.quantization.range_search import _trace

    points = _points(_trace(tiny[0]))
    # conv outputs after their fused ReLU6 (not before), the add, the means; flatten shares its input's range
    assert points[:3] == ["act", "act2", "pw"]
    assert "add" in points and "flatten" not in points and points[-1] == "head"


def test_search_result_is_what_the_simulation_scores(tiny):
    from mobexport.quantization.range_search import _int8_weights, _trace

    model, images = tiny
    plan = search_ranges(model, model, images, max_points=4)
    rep = plan.report
    assert rep["points"] >= 6 and rep["searched"] == 4 and "skipped" not in rep
    assert rep["kl_after"] < rep["kl_before"]
    assert set(plan.ranges) <= set(plan.signatures) and plan.ranges  # only changed points are handed over
    assert "head" not in plan.ranges  # the logits' range is never searched
    # rerun the simulation from scratch with the plan's ranges on top of the starting ones: the reported KL
    sim = _Sim(_trace(_int8_weights(model)), symmetric=False)
    start = _start_ranges(sim, images)
    xs = [torch.from_numpy(x) for x in images[:8]]
    with torch.no_grad():
        ref = [model(x) for x in xs]
        out = [sim.run(x, {**start, **plan.ranges})[0] for x in xs]
    assert _kl(ref, out) / len(xs) == pytest.approx(rep["kl_after"], rel=1e-3)


def _start_ranges(sim, images):
    """The search's starting ranges (per-tensor mse over every image), as ``search_ranges`` computes them."""
    points = _points(sim.gm)
    with torch.no_grad():
        col, _, _ = _collect(sim, sim, points, [torch.from_numpy(x) for x in images], 0)
    return col.ranges("mse", open_top=(points[-1],))


def test_resumed_run_equals_a_fresh_one_with_in_place_activations():
    """The search resumes runs from a stored environment; an in-place Hardswish (MobileNetV3) must not be
    applied twice to its stored input, nor rewrite the stored tensors, and the caller's model keeps its flags."""
    from mobexport.quantization.range_search import _trace

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, 1, 1), nn.Hardswish(inplace=True), nn.Conv2d(8, 4, 1),
                          nn.SiLU(inplace=True), nn.Flatten(), nn.Linear(4 * 8 * 8, 5)).eval()
    images = [np.random.default_rng(k).standard_normal((1, 3, 8, 8)).astype(np.float32) for k in range(4)]
    sim = _Sim(_trace(copy.deepcopy(model)), symmetric=False)  # _Sim owns what it runs
    ranges = _start_ranges(sim, images)
    x = torch.from_numpy(images[0])
    with torch.no_grad():
        fresh, env = sim.run(x, ranges)
        for point in ("_1", "_3"):  # the activations' nodes: where the search resumes for them
            for _ in range(2):
                again, _ = sim.run(x, ranges, env, sim.index[point])
                assert torch.equal(again, fresh)
        assert torch.allclose(sim.run(x, {})[0], model(x), atol=1e-6)
    search_ranges(model, model, images, max_points=2)
    assert model[1].inplace and model[3].inplace


def test_flat_logits_change_no_range(tiny):
    """A model whose class scores are nearly flat (like a random-weight one): every factor ties up to rounding,
    so no range may move (picking the least KL shrank 13 of MobileNetV3-L's 16 searched ranges to 0.25x)."""
    model, images = copy.deepcopy(tiny[0]), tiny[1]
    with torch.no_grad():
        model.head.weight.mul_(1e-5)
        model.head.bias.zero_()
    plan = search_ranges(model, model, images, max_points=4)
    assert plan.report["searched"] == 4 and plan.report["kl_before"] < 1e-9
    assert plan.ranges == {} and plan.report["factors"] == {}
    assert plan.report["kl_after"] == plan.report["kl_before"]


def test_backend_tensors_matched_by_values_in_any_layout():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((1, 4, 5, 6)).astype(np.float32)
    plan = RangePlan(ranges={"p": (-0.5, 0.5)}, signatures={"p": np.sort(x.reshape(-1))})
    backend = {"nhwc": (-3.0, 3.0), "other": (-2.0, 2.0), "input": (-1.0, 1.0)}
    first = {"nhwc": x.transpose(0, 2, 3, 1) * (1 + 1e-6),  # same values, channels last, float noise
             "other": rng.standard_normal((1, 4, 5, 6)).astype(np.float32),  # same size, other values
             "input": x}  # a kept tensor is never replaced
    out = plan.apply(backend, first, keep=("input",))
    assert out == {"nhwc": (-0.5, 0.5), "other": (-2.0, 2.0), "input": (-1.0, 1.0)}
    assert plan.report["backend_tensors_replaced"] == 1 and plan.report["points_matched"] == "1 of 1"


def test_untraceable_model_keeps_its_ranges():
    class Branchy(nn.Module):
        def forward(self, x):
            return x * 2 if float(x.sum()) > 0 else x  # data-dependent Python branch: torch.fx cannot trace

    plan = search_ranges(Branchy(), Branchy(), [np.ones((1, 3, 4, 4), np.float32)])
    assert plan.ranges == {} and "torch.fx cannot trace" in plan.report["skipped"]
    assert plan.apply({"t": (0.0, 1.0)}, {"t": np.ones(3)}) == {"t": (0.0, 1.0)}


@pytest.mark.parametrize("fmt", ["tflite", "tensorrt"])
def test_range_search_flag_needs_int8(fmt, tmp_path, capsys):
    from mobexport.cli import main

    assert main([fmt, "--range-search", "mobileone_mu0", "--out", str(tmp_path)]) == 2
    assert "--range-search applies to --int8 only" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())  # nothing written
