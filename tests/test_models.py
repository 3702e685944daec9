"""Generic model tests, written once and parametrized over list_models()."""

from __future__ import annotations

import copy

import pytest
import torch

import mobexport
from mobexport.exporter.layers.reparam import Reparameterizable
from mobexport.exporter.passes.fold_batchnorm import bn_modules
from mobexport.exporter.profile import count_macs, count_params, profile_ops
from mobexport.exporter.testing import randomize_batchnorm, rel_max_error
from tests.known_failures import params

# The card's canonical names: a guard that every one of them is registered.
CARD = (
    [f"mobileone_s{i}" for i in range(5)] + [f"mobileone_mu{i}" for i in range(3)]
    + ["mnv4_conv_s", "mnv4_conv_m", "mnv4_conv_l", "mnv4_hybrid_m", "mnv4_hybrid_l"]
    + ["moga_a", "moga_b", "moga_c"]
    + ["mobilevitv3_xxs", "mobilevitv3_xs", "mobilevitv3_s", "mobilevitv3_0_5", "mobilevitv3_0_75", "mobilevitv3_1_0"]
    + ["repvgg_a0", "repvgg_a1", "repvgg_a2", "repvgg_b0", "repvgg_b1", "repvgg_b2", "repvgg_b3"]
    + ["mobilenetv2_100", "mobilenetv3_large_100", "mobilenetv3_small_100"]
    + ["efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"]
)
MODELS = mobexport.list_models()


def test_every_card_model_is_registered():
    missing = [n for n in CARD if n not in MODELS]
    assert not missing, f"not registered yet: {missing}"


@pytest.mark.parametrize("name", MODELS)
def test_reparameterize_is_equivalent_with_random_bn(name):
    spec = mobexport.get_spec(name)
    torch.manual_seed(0)
    model = mobexport.create_model(name)
    randomize_batchnorm(model, seed=1)
    model.eval()
    x = torch.randn(1, *spec.input_size)
    with torch.no_grad():
        ref = model(x)
    deploy = mobexport.reparameterize(copy.deepcopy(model))
    assert deploy is not None
    with torch.no_grad():
        out = deploy(x)
    err = rel_max_error(ref, out)
    assert err <= 1e-4, f"{name}: deploy/train relative max error {err:.2e}"
    assert not bn_modules(deploy), f"{name}: BatchNorm left: {bn_modules(deploy)[:3]}"
    assert not [m for m in deploy.modules() if isinstance(m, Reparameterizable) and not m.deployed]
    # idempotent: a second call changes nothing
    before = {k: v.clone() for k, v in deploy.state_dict().items()}
    assert mobexport.reparameterize(deploy) is deploy
    after = deploy.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)


@pytest.mark.parametrize("name", [n for n in MODELS if mobexport.get_spec(n).multi_branch])
def test_multi_branch_deploy_form_is_plain(name):
    """MobileOne/RepVGG deploy forms: a plain chain — no branch adds, no residual adds."""
    spec = mobexport.get_spec(name)
    deploy = mobexport.reparameterize(mobexport.create_model(name))
    ops = profile_ops(deploy, torch.randn(1, *spec.input_size))
    adds = [r for r in ops if r.op in ("add", "add_")]
    assert not adds, f"{name}: {len(adds)} add ops in the deploy graph, first in {adds[0].layer}"


@pytest.mark.parametrize("name", MODELS)
def test_param_and_mac_counts_match_reference(name):
    spec = mobexport.get_spec(name)
    model = mobexport.create_model(name)
    train_params = count_params(model)
    deploy = mobexport.reparameterize(model)
    params = count_params(deploy)
    if spec.reference.params:  # the reference's train form exactly, or its deploy form within 0.5 %
        assert train_params == spec.reference.params or abs(
            params - spec.reference.params) / spec.reference.params <= 0.005, (
            f"{name}: {params:,} params vs reference {spec.reference.params:,}")
    else:  # no reference implementation (MobileOne-μ): the paper's figure within 3%
        assert spec.published.params, f"{name}: spec has neither reference nor published params"
        assert abs(params - spec.published.params) / spec.published.params <= 0.03, (
            f"{name}: {params:,} params vs published {spec.published.params:,}")
    if spec.reference.macs:
        macs = count_macs(deploy, spec.input_size)
        assert abs(macs - spec.reference.macs) / spec.reference.macs <= 0.02, (
            f"{name}: {macs / 1e6:.1f}M MACs vs reference {spec.reference.macs / 1e6:.1f}M")


@pytest.mark.parametrize("name", MODELS)
def test_torch_export_of_deploy_form(name):
    spec = mobexport.get_spec(name)
    deploy = mobexport.reparameterize(mobexport.create_model(name)).eval()
    x = torch.randn(1, *spec.input_size)
    ep = torch.export.export(deploy, (x,))
    with torch.no_grad():
        assert torch.allclose(ep.module()(x), deploy(x), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", params("test_spec_is_complete", MODELS))
def test_spec_is_complete(name):
    spec = mobexport.get_spec(name)
    c, h, w = spec.input_size
    assert c == 3 and h == w == spec.preprocessing.crop
    assert spec.preprocessing.color in ("RGB", "BGR")
    assert spec.published.top1 and spec.sources
