"""MobileNetV4 (UIB, Fused-IB, Mobile MQA, layer scale) and MoGA blocks: shapes, deploy/train equivalence with
randomized BatchNorm, MQA numerics against a per-head einsum reference, rank ≤ 4 deploy graphs, and weight
round trips through the timm / official key layouts."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import mobexport
from mobexport.exporter.errors import WeightsError
from mobexport.exporter.layers.conv import ChannelAffine
from mobexport.exporter.layers.uib import (
    FusedInvertedBottleneck,
    LayerScale,
    MobileMQA,
    UniversalInvertedBottleneck,
)
from mobexport.exporter.models.moga import MB, MoGABlock, MoGASqueezeExcite
from mobexport.exporter.passes.fold_batchnorm import bn_modules
from mobexport.exporter.testing import randomize_batchnorm, rel_max_error
from mobexport.exporter.weights import get_layout


def _deploy_check(block: nn.Module, x: torch.Tensor, seed: int = 1) -> tuple[torch.Tensor, nn.Module]:
    """Randomize BN (and layer scale), compare train-form eval output with the re-parameterized form."""
    randomize_batchnorm(block, seed=seed)
    block.eval()
    with torch.no_grad():
        ref = block(x)
    deploy = mobexport.reparameterize(copy.deepcopy(block))
    with torch.no_grad():
        out = deploy(x)
    assert out.shape == ref.shape
    err = rel_max_error(ref, out)
    assert err <= 1e-5, f"{type(block).__name__}: deploy/train rel err {err:.2e}"
    assert not bn_modules(deploy)
    return ref, deploy


# ------------------------------------------------------------------------------------------------- UIB

UIB_CASES = {  # name: (start_k, mid_k)
    "extra_dw": (3, 5),
    "ib": (0, 3),
    "convnext": (5, 0),
    "ffn": (0, 0),
}


@pytest.mark.parametrize("layer_scale", [None, 1e-5])
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("kind", list(UIB_CASES))
def test_uib_shapes_and_deploy_equivalence(kind, stride, layer_scale):
    start_k, mid_k = UIB_CASES[kind]
    if kind == "ffn" and stride == 2:
        with pytest.raises(ValueError, match="FFN"):
            UniversalInvertedBottleneck(16, 16, 0, 0, 4.0, stride=2)
        return
    torch.manual_seed(0)
    block = UniversalInvertedBottleneck(16, 16, start_k, mid_k, 4.0, stride=stride, layer_scale=layer_scale)
    assert isinstance(block.dw_start, nn.Identity) == (start_k == 0)
    assert isinstance(block.dw_mid, nn.Identity) == (mid_k == 0)
    assert block.pw_exp.conv.out_channels == 64
    assert block.has_skip == (stride == 1)
    x = torch.randn(2, 16, 12, 12)
    ref, deploy = _deploy_check(block, x)
    assert ref.shape == (2, 16, 12 // stride, 12 // stride)
    assert not any(isinstance(m, LayerScale) for m in deploy.modules())  # γ folded into pw_proj


def test_uib_stride_goes_on_middle_dw_else_start_dw():
    extra = UniversalInvertedBottleneck(8, 16, 3, 5, 2.0, stride=2)
    assert extra.dw_start.conv.stride == (1, 1) and extra.dw_mid.conv.stride == (2, 2)
    convnext = UniversalInvertedBottleneck(8, 16, 3, 0, 2.0, stride=2)
    assert convnext.dw_start.conv.stride == (2, 2)
    # start DW has no activation, middle DW has one
    assert isinstance(extra.dw_start.act, nn.Identity) and isinstance(extra.dw_mid.act, nn.ReLU)
    assert isinstance(extra.pw_proj.act, nn.Identity)


def test_uib_expansion_uses_make_divisible():
    assert UniversalInvertedBottleneck(80, 80, 3, 3, 6.0).pw_exp.conv.out_channels == 480
    assert UniversalInvertedBottleneck(20, 20, 3, 3, 2.5).pw_exp.conv.out_channels == 48  # 50 → 48


# ------------------------------------------------------------------------------------------- layer scale

def test_layer_scale_is_randomized_and_folded_exactly():
    torch.manual_seed(0)
    block = UniversalInvertedBottleneck(16, 16, 3, 3, 2.0, layer_scale=1e-5)
    assert block.layer_scale.gamma.abs().max() < 1e-4
    names = [n for n, _ in block.named_parameters()]
    assert "layer_scale.gamma" in names  # the timm key, and what randomize_batchnorm recognises
    randomize_batchnorm(block, seed=3)
    assert block.layer_scale.gamma.min() >= 0.5  # O(1): the residual branch really contributes
    x = torch.randn(1, 16, 8, 8)
    with torch.no_grad():
        with_branch = block(x)
    assert rel_max_error(with_branch, x) > 1e-2
    _deploy_check(block, x, seed=3)


def test_layer_scale_multiplies_channels():
    ls = LayerScale(3, 0.5)
    with torch.no_grad():
        ls.gamma.copy_(torch.tensor([1.0, 2.0, -1.0]))
    x = torch.ones(1, 3, 2, 2)
    assert torch.equal(ls(x)[0, :, 0, 0], torch.tensor([1.0, 2.0, -1.0]))


# ---------------------------------------------------------------------------------------------- FusedIB

@pytest.mark.parametrize("stride,out_ch", [(2, 24), (1, 16)])
def test_fused_ib_shapes_and_deploy_equivalence(stride, out_ch):
    torch.manual_seed(0)
    block = FusedInvertedBottleneck(16, out_ch, 4.0, 3, stride)
    assert block.conv_exp.conv.out_channels == 64 and block.conv_exp.conv.kernel_size == (3, 3)
    assert block.has_skip == (stride == 1 and out_ch == 16)
    x = torch.randn(2, 16, 16, 16)
    ref, _ = _deploy_check(block, x)
    assert ref.shape == (2, out_ch, 16 // stride, 16 // stride)


# --------------------------------------------------------------------------------------------------- MQA

def _mqa_reference(block: MobileMQA, x: torch.Tensor) -> torch.Tensor:
    """Straightforward MQA in float64: explicit BN, per-head einsum attention, output conv, γ, residual."""
    x = x.double()
    bn = block.norm
    xn = (x - bn.running_mean.double()[:, None, None]) / torch.sqrt(bn.running_var.double()[:, None, None] + bn.eps)
    xn = xn * bn.weight.double()[:, None, None] + bn.bias.double()[:, None, None]

    def down(mod, t):
        if isinstance(mod, nn.Identity):
            return t
        c, b2 = mod.conv, mod.bn
        t = F.conv2d(t, c.weight.double(), None, c.stride, c.padding, groups=c.groups)
        return F.batch_norm(t, b2.running_mean.double(), b2.running_var.double(), b2.weight.double(),
                            b2.bias.double(), False, 0.0, b2.eps)

    q = F.conv2d(xn, block.query.weight.double())
    k = F.conv2d(down(block.key_down, xn), block.key.weight.double()).flatten(2)  # (B, d, M)
    v = F.conv2d(down(block.value_down, xn), block.value.weight.double()).flatten(2)  # (B, dv, M)
    b, _, h, w = q.shape
    d, heads = block.key_dim, block.heads
    outs = []
    for j in range(heads):
        qj = q[:, j * d:(j + 1) * d].flatten(2)  # (B, d, N)
        logits = torch.einsum("bdn,bdm->bnm", qj, k) / math.sqrt(d)
        outs.append(torch.einsum("bnm,bem->ben", logits.softmax(-1), v))  # (B, dv, N)
    o = torch.cat(outs, 1).reshape(b, heads * block.value_dim, h, w)
    o = F.conv2d(o, block.output.weight.double()) * block.layer_scale.gamma.double()[:, None, None]
    return x + o


@pytest.mark.parametrize("kv_stride", [1, 2])
def test_mqa_matches_einsum_reference_and_deploys_exactly(kv_stride):
    torch.manual_seed(0)
    block = MobileMQA(32, heads=4, key_dim=16, value_dim=8, kv_stride=kv_stride)
    x = torch.randn(2, 32, 8, 6)
    randomize_batchnorm(block, seed=2)
    block.eval()
    with torch.no_grad():
        ref = _mqa_reference(block, x)
        out = block(x)
    assert out.shape == x.shape
    assert rel_max_error(ref.float(), out) <= 1e-5
    _, deploy = _deploy_check(block, x, seed=2)
    affines = [m for m in deploy.modules() if isinstance(m, ChannelAffine)]
    # kv_stride 1: BN folded into Q, K, V 1×1 convs. kv_stride 2: only the K/V path (padded DW) keeps it.
    assert len(affines) == (0 if kv_stride == 1 else 1)
    assert deploy.q_scale == 1.0 and deploy.query.bias is not None
    assert not any(isinstance(m, LayerScale) for m in deploy.modules())


@pytest.mark.parametrize("kv_stride", [1, 2])
def test_mqa_shapes_of_kv_path(kv_stride):
    block = MobileMQA(24, heads=2, key_dim=8, kv_stride=kv_stride).eval()
    seen = {}

    def record(name):
        def hook(module, inputs, output):
            seen[name] = tuple(output.shape)  # returns None: the output is left unchanged
        return hook

    block.key.register_forward_hook(record("k"))
    block.value.register_forward_hook(record("v"))
    with torch.no_grad():
        block(torch.randn(1, 24, 8, 8))
    side = 8 // kv_stride
    assert seen == {"k": (1, 8, side, side), "v": (1, 8, side, side)}
    assert block.query.out_channels == 16 and block.output.in_channels == 16


def test_mqa_rejects_bad_kv_stride():
    with pytest.raises(ValueError, match="kv_stride"):
        MobileMQA(16, 2, 8, kv_stride=3)


def _max_rank(module: nn.Module, x: torch.Tensor) -> int:
    ep = torch.export.export(module.eval(), (x,))
    ranks = [n.meta["val"].dim() for n in ep.graph.nodes if isinstance(n.meta.get("val"), torch.Tensor)]
    return max(ranks)


def test_hybrid_deploy_graph_has_no_rank5_tensors():
    spec = mobexport.get_spec("mnv4_hybrid_m")
    deploy = mobexport.reparameterize(mobexport.create_model("mnv4_hybrid_m"))
    assert _max_rank(deploy, torch.randn(1, *spec.input_size)) <= 4


# ------------------------------------------------------------------------------------------------- MoGA

@pytest.mark.parametrize("cfg", [MB(6, 24, 5, 1, "re"), MB(6, 24, 3, 1, "hs", True),
                                 MB(3, 40, 7, 2, "hs", True), MB(3, 40, 3, 2, "re")])
def test_moga_block_shapes_and_deploy_equivalence(cfg):
    torch.manual_seed(0)
    block = MoGABlock(24, cfg)
    assert block.expand.conv.out_channels == round(24 * cfg.e)
    assert isinstance(block.se, MoGASqueezeExcite) == cfg.se
    if cfg.se:
        assert block.se.reduce.out_channels == round(24 * cfg.e) // 4
        assert type(block.se.act) is type(block.dw.act)  # SE uses the block's activation
    assert block.has_skip == (cfg.s == 1 and cfg.out == 24)
    x = torch.randn(2, 24, 14, 14)
    ref, _ = _deploy_check(block, x)
    assert ref.shape == (2, cfg.out, 14 // cfg.s, 14 // cfg.s)


def test_moga_se_gate_is_hard_sigmoid():
    se = MoGASqueezeExcite(8, nn.ReLU)
    x = torch.randn(1, 8, 4, 4)
    gate = F.hardsigmoid(se.expand(F.relu(se.reduce(x.mean((2, 3), keepdim=True)))))
    assert torch.allclose(se(x), x * gate)


# -------------------------------------------------------------------------------------- registry & specs

@pytest.mark.parametrize("name,alias,res,kind", [
    ("mnv4_conv_s", "mobilenetv4_conv_small", 224, "conv"),
    ("mnv4_conv_m", "mobilenetv4_conv_medium", 256, "conv"),
    ("mnv4_conv_l", "mobilenetv4_conv_large", 384, "conv"),
    ("mnv4_hybrid_m", "mobilenetv4_hybrid_medium", 256, "hybrid"),
    ("mnv4_hybrid_l", "mobilenetv4_hybrid_large", 384, "hybrid"),
    ("moga_a", None, 224, "conv"), ("moga_b", None, 224, "conv"), ("moga_c", None, 224, "conv"),
])
def test_specs(name, alias, res, kind):
    spec = mobexport.get_spec(name)
    assert spec.input_size == (3, res, res) and spec.kind == kind
    assert spec.reference.params and spec.reference.macs and spec.published.top1
    if alias:
        assert mobexport.get_spec(alias) is spec


def test_hybrid_l_uses_exact_gelu_everywhere():
    model = mobexport.create_model("mnv4_hybrid_l")
    acts = [m for m in model.modules() if isinstance(m, (nn.ReLU, nn.GELU))]
    assert acts and all(isinstance(m, nn.GELU) and m.approximate == "none" for m in acts)


# ------------------------------------------------------------------------------------- weights layouts

TIMM_KEYS = {  # (model, a key the timm checkpoint must have after from_ours, shape)
    "mnv4_conv_s": [("conv_stem.weight", (32, 3, 3, 3)), ("blocks.0.0.conv.weight", (32, 32, 3, 3)),
                    ("blocks.0.0.bn1.running_var", (32,)), ("blocks.2.0.dw_start.conv.weight", (64, 1, 5, 5)),
                    ("blocks.4.0.conv.weight", (960, 128, 1, 1)), ("conv_head.weight", (1280, 960, 1, 1)),
                    ("norm_head.weight", (1280,)), ("classifier.weight", (1000, 1280))],
    "mnv4_hybrid_m": [("blocks.0.0.conv_exp.weight", (128, 32, 3, 3)), ("blocks.0.0.bn2.weight", (48,)),
                      ("blocks.0.0.conv_pwl.weight", (48, 128, 1, 1)), ("blocks.2.4.norm.running_mean", (160,)),
                      ("blocks.2.4.attn.query.proj.weight", (256, 160, 1, 1)),
                      ("blocks.2.4.attn.key.down_conv.weight", (160, 1, 3, 3)),
                      ("blocks.2.4.attn.value.norm.weight", (160,)),
                      ("blocks.2.4.attn.key.proj.weight", (64, 160, 1, 1)),
                      ("blocks.2.4.attn.output.proj.weight", (160, 256, 1, 1)),
                      ("blocks.2.4.layer_scale.gamma", (160,)), ("blocks.3.8.attn.value.proj.weight", (64, 256, 1, 1)),
                      ("blocks.2.0.pw_proj.bn.running_var", (160,)), ("blocks.2.0.layer_scale.gamma", (160,))],
    "moga_a": [("stem.0.weight", (16, 3, 3, 3)), ("separable_conv.4.running_mean", (16,)),
               ("separable_conv.3.weight", (16, 16, 1, 1)), ("mb_module.5.mid_se.conv.0.weight", (60, 240, 1, 1)),
               ("mb_module.5.mid_se.fc.0.bias", (240,)), ("mb_module.13.bn3.weight", (160,)),
               ("mb_module.0.conv2.weight", (96, 1, 5, 5)), ("conv_before_pooling.1.weight", (960,)),
               ("conv_head.0.weight", (1280, 960, 1, 1)), ("classifier.bias", (1000,))],
}
LAYOUT = {"mnv4_conv_s": "timm", "mnv4_hybrid_m": "timm", "moga_a": "official"}


def _random_model(name: str) -> nn.Module:
    torch.manual_seed(0)
    model = mobexport.create_model(name)
    return randomize_batchnorm(model, seed=5).eval()


@pytest.mark.parametrize("name", list(TIMM_KEYS))
def test_reference_layout_round_trip(name, tmp_path):
    spec = mobexport.get_spec(name)
    model = _random_model(name)
    layout = get_layout(spec.family, LAYOUT[name])
    theirs = layout.from_ours(model.state_dict())
    for key, shape in TIMM_KEYS[name]:
        assert key in theirs, f"{name}: {key} missing in the {layout.name} layout"
        assert tuple(theirs[key].shape) == shape, key
    if name == "moga_a":  # the code's SE placement: block 5, not block 2
        assert not any(k.startswith("mb_module.2.mid_se") for k in theirs)
    assert layout.to_ours(theirs).keys() == model.state_dict().keys()
    path = tmp_path / "w.pth"
    torch.save({"model_state": theirs} if name == "moga_a" else theirs, path)
    loaded = mobexport.create_model(name, weights=path)
    assert loaded.loaded_from == f"{layout.name} (train form)" + (", from 'model_state'" if name == "moga_a" else "")
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), model.state_dict().values(),
                                                 strict=True))
    x = torch.randn(1, *spec.input_size)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))


@pytest.mark.parametrize("name", ["mnv4_conv_m", "mnv4_conv_l", "mnv4_hybrid_l", "moga_b", "moga_c"])
def test_layout_mapping_is_a_bijection(name):
    spec = mobexport.get_spec(name)
    model = mobexport.create_model(name)
    layout = get_layout(spec.family, "timm" if spec.family == "mobilenetv4" else "official")
    for sd in (model.state_dict(), mobexport.reparameterize(model).state_dict()):
        theirs = layout.from_ours(sd)
        assert len(theirs) == len(sd)
        assert layout.to_ours(theirs).keys() == sd.keys()


@pytest.mark.parametrize("name", ["mnv4_hybrid_m", "moga_c"])
def test_deploy_form_round_trip(name, tmp_path):
    spec = mobexport.get_spec(name)
    deploy = mobexport.reparameterize(_random_model(name))
    path = tmp_path / "deploy.pth"
    torch.save(deploy.state_dict(), path)
    loaded = mobexport.create_model(name, weights=path)
    assert loaded.loaded_from == "mobexport (deploy form)"
    x = torch.randn(1, *spec.input_size)
    with torch.no_grad():
        assert torch.equal(loaded(x), deploy(x))


def test_wrong_shape_raises_weights_error(tmp_path):
    theirs = get_layout("mobilenetv4", "timm").from_ours(_random_model("mnv4_conv_s").state_dict())
    theirs["blocks.2.1.dw_mid.conv.weight"] = torch.zeros(192, 1, 5, 5)  # 3×3 in the model
    path = tmp_path / "bad.pth"
    torch.save(theirs, path)
    with pytest.raises(WeightsError, match=r"mis-shaped.*blocks\.2\.1\.dw_mid\.conv\.weight"):
        mobexport.create_model("mnv4_conv_s", weights=path)


def test_other_family_weights_are_rejected(tmp_path):
    path = tmp_path / "moga.pth"
    torch.save({"model_state": mobexport.create_model("moga_a").state_dict()}, path)
    with pytest.raises(WeightsError, match="do not match"):
        mobexport.create_model("moga_b", weights=path)


def test_deploy_mqa_with_kept_affine_quantizes_for_coreml_w8a8():
    """coremltools' int8 activation quantizer (coreml-w8a8) works on a torch.fx graph: the deploy Mobile MQA
    (kv_stride 2 keeps a ChannelAffine) must trace without shape arithmetic that it would try to observe."""
    pytest.importorskip("coremltools")
    import numpy as np

    from mobexport.converters.coreml import quantize_w8a8
    from mobexport.exporter.layers.uib import MobileMQA

    torch.manual_seed(0)
    block = MobileMQA(32, heads=2, key_dim=16, kv_stride=2)
    for m in block.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1), m.running_var.uniform_(0.5, 2)
    block = mobexport.reparameterize(block.eval())
    assert isinstance(block.kv_norm, ChannelAffine)
    calib = [np.random.default_rng(i).standard_normal((1, 32, 8, 8)).astype(np.float32) for i in range(4)]
    q = quantize_w8a8(block, calib, torch.from_numpy(calib[0]))
    x = torch.from_numpy(calib[1])
    with torch.no_grad():
        ref, out = block(x), q(x)
    assert out.shape == ref.shape
    assert F.cosine_similarity(out.flatten(), ref.flatten(), dim=0) > 0.99
