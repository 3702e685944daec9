"""The passes on user models we did not write (tests/fixtures/custom_model.py and small inline modules)."""

from __future__ import annotations

import copy
import importlib.util
import json
from pathlib import Path

import pytest
import torch
from torch import nn

from mobexport.api import reparameterize
from mobexport.exporter.errors import ConversionError, UsageError
from mobexport.exporter.layers.conv import ChannelAffine
from mobexport.exporter.passes.fold_batchnorm import bn_modules, fold_batchnorm
from mobexport.exporter.passes.reparameterize import user_method
from mobexport.exporter.testing import randomize_batchnorm, rel_max_error

FIXTURE = Path(__file__).parent / "fixtures" / "custom_model.py"


def _fixture():
    spec = importlib.util.spec_from_file_location("custom_model_fixture", FIXTURE)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _trained(model: nn.Module, dtype=torch.float32) -> nn.Module:
    torch.manual_seed(0)
    return randomize_batchnorm(model, seed=3).to(dtype).eval()


def _deploy(model: nn.Module, x: torch.Tensor) -> tuple[nn.Module, dict, float]:
    report = {}
    with torch.no_grad():
        ref = model(x)
        deploy = reparameterize(copy.deepcopy(model), report=report)
        return deploy, report, rel_max_error(ref, deploy(x))


@pytest.mark.parametrize(("dtype", "tol"), [(torch.float32, 1e-5), (torch.float64, 1e-10)])
def test_custom_model_deploy_is_equivalent(dtype, tol):
    fx = _fixture()
    model = _trained(fx.build(), dtype)
    x = torch.randn(2, *fx.INPUT_SHAPE[1:], dtype=dtype)
    deploy, _, err = _deploy(model, x)
    assert err <= tol, f"{dtype}: relative max error {err:.2e}"
    assert not bn_modules(deploy)
    assert all(p.dtype == dtype for p in deploy.parameters())


def test_custom_model_report():
    fx = _fixture()
    model = _trained(fx.build())
    deploy, report, _ = _deploy(model, torch.randn(1, *fx.INPUT_SHAPE[1:]))
    assert json.loads(json.dumps(report)) == report
    assert report["reparameterized"] == [{"module": "rep", "method": "reparameterize"},
                                         {"module": "down", "method": "switch_to_deploy"}]
    assert report["fx"] == "traced"
    assert {"batchnorm": "bn", "into": "conv"} in report["folded"]
    assert {"batchnorm": "features.1", "into": "features.0"} in report["folded"]
    assert len(report["folded"]) == 2
    assert report["affine"] == ["post_bn"]
    # the user's classes stay; blocks deployed by their own methods; folded BNs gone, the unfoldable one affine
    assert type(deploy) is type(model) and deploy.rep.deployed and deploy.down.deploy
    assert isinstance(deploy.bn, nn.Identity) and isinstance(deploy.features[1], nn.Identity)
    assert isinstance(deploy.post_bn, ChannelAffine)
    assert deploy.conv.bias is not None and deploy.features[0].bias is not None


def test_second_call_changes_nothing():
    fx = _fixture()
    deploy, _, _ = _deploy(_trained(fx.build()), torch.randn(1, *fx.INPUT_SHAPE[1:]))
    before = {k: v.clone() for k, v in deploy.state_dict().items()}
    report = {}
    assert reparameterize(deploy, report=report) is deploy
    after = deploy.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    assert report["reparameterized"] == [] and report["folded"] == [] and report["affine"] == []


class Untraceable(nn.Module):
    """Data-dependent control flow: torch.fx cannot trace it."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU())
        self.conv = nn.Conv2d(8, 8, 1)
        self.bn = nn.BatchNorm2d(8)

    def forward(self, x):
        x = self.body(x)
        if x.sum() > 0:
            x = x * 2
        return self.bn(self.conv(x))


def test_untraceable_model_folds_sequentials_and_says_why():
    model = _trained(Untraceable())
    deploy, report, err = _deploy(model, torch.randn(2, 3, 16, 16))
    assert err <= 1e-5
    assert report["fx"].startswith("not traceable: ")
    assert report["folded"] == [{"batchnorm": "body.1", "into": "body.0"}]
    assert report["affine"] == ["bn"]  # no Sequential around it: kept exact as a ChannelAffine
    assert not bn_modules(deploy)


class SharedOutput(nn.Module):
    """conv → BN, but the conv's output is also read by the skip: folding would change the skip's input."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)
        self.bn = nn.BatchNorm2d(3)
        self.fc = nn.Linear(3, 5, bias=False)
        self.bn1d = nn.BatchNorm1d(5)

    def forward(self, x):
        y = self.conv(x)
        z = self.bn(y) + y
        return self.bn1d(self.fc(z.mean((2, 3))))


def test_fx_folds_only_single_user_pairs():
    model = _trained(SharedOutput())
    x = torch.randn(4, 3, 8, 8)
    with torch.no_grad():
        ref = model(x)
        report = {}
        out = fold_batchnorm(model, report=report)(x)
    assert rel_max_error(ref, out) <= 1e-5
    assert report["fx"] == "traced"
    assert report["folded"] == [{"batchnorm": "bn1d", "into": "fc"}]
    assert report["affine"] == ["bn"]


class Boom(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 1)

    def forward(self, x):
        return self.conv(x)

    def fuse(self):
        raise RuntimeError("boom")


def test_raising_user_method_names_module_and_method():
    model = nn.Sequential(nn.Conv2d(3, 3, 1), Boom())
    with pytest.raises(ConversionError) as info:
        reparameterize(model)
    msg = str(info.value)
    assert "'1'" in msg and "Boom.fuse()" in msg and "boom" in msg
    assert info.value.step == "reparameterize"
    assert isinstance(info.value.__cause__, RuntimeError)


class Outer(nn.Module):
    """Its reparameterize() merges its child (which has its own method) away: the child must not be called."""

    def __init__(self):
        super().__init__()
        self.inner = Inner()
        self.keep = Inner()

    def forward(self, x):
        return self.keep(self.inner(x))

    def reparameterize(self):
        self.inner = nn.Identity()


class Inner(nn.Module):
    calls = 0

    def forward(self, x):
        return x

    def switch_to_deploy(self):
        self.calls += 1


def test_outermost_first_each_once_torch_modules_skipped():
    model = nn.Sequential(Outer())
    report = {}
    reparameterize(model, report=report)
    reparameterize(model, report=report)
    assert report["reparameterized"] == [{"module": "0", "method": "reparameterize"},
                                         {"module": "0.keep", "method": "switch_to_deploy"}]
    assert model[0].keep.calls == 1


class NotMethods(nn.Module):
    def __init__(self):
        super().__init__()
        self.fuse = nn.Conv2d(1, 1, 1)  # a submodule named like a method

    def switch_to_deploy(self, flag):  # needs an argument: not the zero-argument convention
        raise AssertionError("must not be called")


def test_user_method_detection():
    assert user_method(NotMethods()) is None
    assert user_method(nn.Conv2d(1, 1, 1)) is None
    assert user_method(Inner()) == "switch_to_deploy"
    assert user_method(_fixture().build().rep) == "reparameterize"


def test_bad_inputs_are_clear_errors():
    with pytest.raises(UsageError, match="expects an nn.Module, got int"):
        reparameterize(_fixture().not_a_module())
    no_stats = nn.Sequential(nn.Conv2d(3, 3, 1), nn.ReLU(), nn.BatchNorm2d(3, track_running_stats=False))
    with pytest.raises(ConversionError, match="'2' has no running statistics"):
        fold_batchnorm(no_stats)
