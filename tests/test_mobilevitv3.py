"""MobileViTv3: patch (un)folding, attention numerics, block dataflow, BN folding, cvnets key layout, specs."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

import mobexport
from mobexport.exporter.errors import WeightsError
from mobexport.exporter.layers.mobilevit import (
    LinearSelfAttention,
    MobileViTv3BlockV1,
    MobileViTv3BlockV2,
    MultiHeadSelfAttention,
    fold_patches,
    map_to_tokens,
    tokens_to_map,
    unfold_patches,
)
from mobexport.exporter.testing import randomize_batchnorm, rel_max_error
from mobexport.exporter.weights import get_layout

V1 = ["mobilevitv3_xxs", "mobilevitv3_xs", "mobilevitv3_s",
      "mobilevitv3_xxs_l2", "mobilevitv3_xs_l2", "mobilevitv3_s_l2"]
V2 = ["mobilevitv3_0_5", "mobilevitv3_0_75", "mobilevitv3_1_0"]


# ---------------------------------------------------------------------------------------------- folding

def test_unfold_matches_im2col_order_and_fold_inverts():
    x = torch.randn(2, 5, 6, 10)
    p = unfold_patches(x)
    assert p.shape == (2, 5, 4, 15)
    assert torch.equal(p, F.unfold(x, kernel_size=2, stride=2).reshape(2, 5, 4, 15))
    assert torch.equal(fold_patches(p, 6, 10), x)


def test_tokens_layout_one_sequence_per_pixel_position():
    b, d, h, w = 2, 3, 4, 6
    x = torch.randn(b, d, h, w)
    t = map_to_tokens(x)
    nw = w // 2
    assert t.shape == (b * 4, (h // 2) * nw, d)
    for bi in range(b):
        for ph in range(2):
            for pw in range(2):
                for n in range(t.shape[1]):
                    ih, iw = divmod(n, nw)
                    assert torch.equal(t[bi * 4 + ph * 2 + pw, n], x[bi, :, 2 * ih + ph, 2 * iw + pw])
    assert torch.equal(tokens_to_map(t, b, h, w), x)


def test_block_export_graph_has_rank_at_most_4():
    block = MobileViTv3BlockV1(16, 16, 32, 1).eval()
    ep = torch.export.export(block, (torch.randn(1, 16, 8, 8),)).run_decompositions()
    ranks = [(str(n.target), n.meta["val"].dim()) for n in ep.graph.nodes
             if n.op == "call_function" and isinstance(n.meta.get("val"), torch.Tensor)]
    assert max(r for _, r in ranks) == 4  # the token tensors are [B, h, N, hd]
    too_high = [(t, r) for t, r in ranks if r > 4]
    assert not too_high, too_high
    ops = {str(n.target) for n in ep.graph.nodes if n.op == "call_function"}
    assert not [o for o in ops if "im2col" in o or "col2im" in o]


# ---------------------------------------------------------------------------------------------- attention

def test_mhsa_matches_per_head_reference():
    torch.manual_seed(0)
    dim, heads = 24, 4
    att = MultiHeadSelfAttention(dim, heads).eval()
    x = torch.randn(3, 7, dim)
    wq, wk, wv = att.qkv_proj.weight.chunk(3)
    bq, bk, bv = att.qkv_proj.bias.chunk(3)
    hd = dim // heads
    outs = []
    for h in range(heads):
        s = slice(h * hd, (h + 1) * hd)
        q, k, v = x @ wq[s].T + bq[s], x @ wk[s].T + bk[s], x @ wv[s].T + bv[s]
        a = torch.softmax(q @ k.transpose(1, 2) / hd ** 0.5, dim=-1)
        outs.append(a @ v)
    ref = torch.cat(outs, dim=-1) @ att.out_proj.weight.T + att.out_proj.bias
    with torch.no_grad():
        assert torch.allclose(att(x), ref, atol=1e-5)


def test_linear_self_attention_matches_explicit_formula():
    torch.manual_seed(0)
    d = 6
    lsa = LinearSelfAttention(d).eval()
    x = torch.randn(2, d, 4, 9)  # [B, d, P, N]
    w = lsa.qkv_proj.conv.weight[:, :, 0, 0]
    qkv = torch.einsum("oc,bcpn->bopn", w, x) + lsa.qkv_proj.conv.bias[None, :, None, None]
    q, k, v = qkv[:, 0], qkv[:, 1:1 + d], qkv[:, 1 + d:]
    ref = torch.empty(2, d, 4, 9)
    for b in range(2):
        for p in range(4):
            s = torch.exp(q[b, p]) / torch.exp(q[b, p]).sum()  # over the N patches
            ctx = (k[b, :, p, :] * s).sum(-1)  # [d]
            ref[b, :, p, :] = torch.relu(v[b, :, p, :]) * ctx[:, None]
    wo = lsa.out_proj.conv.weight[:, :, 0, 0]
    ref = torch.einsum("oc,bcpn->bopn", wo, ref) + lsa.out_proj.conv.bias[None, :, None, None]
    with torch.no_grad():
        assert torch.allclose(lsa(x), ref, atol=1e-5)


# ---------------------------------------------------------------------------------------------- blocks

@pytest.mark.parametrize("make", [lambda: MobileViTv3BlockV1(24, 32, 64, 2), lambda: MobileViTv3BlockV2(24, 32, 2)])
@pytest.mark.parametrize("size", [(8, 12), (6, 10)])
def test_block_shape_and_bn_fold_equivalence(make, size):
    torch.manual_seed(0)
    block = randomize_batchnorm(make(), seed=3).eval()
    x = torch.randn(2, 24, *size)
    with torch.no_grad():
        ref = block(x)
        deploy = mobexport.reparameterize(copy.deepcopy(block))
        out = deploy(x)
    assert ref.shape == x.shape
    assert rel_max_error(ref, out) <= 1e-5


def test_odd_sizes_v1_keeps_size_v2_resizes_to_even():
    with torch.no_grad():
        assert MobileViTv3BlockV1(8, 8, 16, 1).eval()(torch.randn(1, 8, 7, 5)).shape == (1, 8, 7, 5)
        assert MobileViTv3BlockV2(8, 8, 1).eval()(torch.randn(1, 8, 7, 5)).shape == (1, 8, 8, 6)


def _perturb_global(block):
    with torch.no_grad():
        for p in block.global_rep.parameters():
            p.add_(torch.randn_like(p))


@pytest.mark.parametrize("style", ["v1", "v2"])
def test_fusion_concat_order(style):
    """v1: fusion input = [local (d), projected global (C)]; v2: conv_proj input = [global (d), local (d)]."""
    torch.manual_seed(0)
    c, d = 8, 12
    block = MobileViTv3BlockV1(c, d, 24, 1) if style == "v1" else MobileViTv3BlockV2(c, d, 1)
    block.eval()
    conv = block.fusion.conv if style == "v1" else block.conv_proj.conv
    global_cols = slice(d, None) if style == "v1" else slice(0, d)
    x = torch.randn(1, c, 8, 8)
    with torch.no_grad():
        conv.weight[:, global_cols] = 0  # cut the global path: the output must ignore global_rep
        before = block(x)
        _perturb_global(block)
        assert torch.allclose(block(x), before)
        conv.weight[:, global_cols] = 1.0  # reconnect it: now it must matter
        before = block(x)
        _perturb_global(block)
        assert not torch.allclose(block(x), before)


# ---------------------------------------------------------------------------------------------- key layout

def _cvnets_sd(name, seed=0):
    torch.manual_seed(seed)
    model = randomize_batchnorm(mobexport.create_model(name), seed=seed)
    return model, get_layout("mobilevitv3", "cvnets").from_ours(model.state_dict())


def test_cvnets_v1_keys_and_shapes():
    _, sd = _cvnets_sd("mobilevitv3_xxs")
    c, d = 64, 64  # layer_3 of XXS
    p = "layer_3.1."
    assert sd["conv_1.block.conv.weight"].shape == (16, 3, 3, 3)
    assert "layer_1.0.block.exp_1x1.block.norm.running_var" in sd
    assert sd["layer_2.0.block.red_1x1.block.conv.weight"].shape == (24, 32, 1, 1)
    assert sd[p + "local_rep.conv_3x3.block.conv.weight"].shape == (c, 1, 3, 3)
    assert sd[p + "local_rep.conv_1x1.block.conv.weight"].shape == (d, c, 1, 1)
    assert p + "local_rep.conv_1x1.block.conv.bias" not in sd
    assert sd[p + "global_rep.0.pre_norm_mha.1.qkv_proj.weight"].shape == (3 * d, d)
    assert sd[p + "global_rep.1.pre_norm_ffn.1.weight"].shape == (128, d)
    assert sd[p + "global_rep.1.pre_norm_ffn.4.weight"].shape == (d, 128)
    assert sd[p + "global_rep.2.weight"].shape == (d,)  # final LayerNorm after L=2 layers
    assert sd[p + "conv_proj.block.conv.weight"].shape == (c, d, 1, 1)
    assert sd[p + "fusion.block.conv.weight"].shape == (c, d + c, 1, 1)
    assert sd["conv_1x1_exp.block.conv.weight"].shape == (512, 128, 1, 1)
    assert sd["classifier.fc.weight"].shape == (1000, 512)


def test_cvnets_v2_keys_and_shapes():
    _, sd = _cvnets_sd("mobilevitv3_0_5")
    c, d = 128, 64  # layer_3 of 0.5
    p = "layer_3.1."
    assert sd[p + "local_rep.0.block.conv.weight"].shape == (c, 1, 3, 3)
    assert sd[p + "local_rep.1.block.conv.weight"].shape == (d, c, 1, 1)
    assert sd[p + "global_rep.0.pre_norm_attn.0.weight"].shape == (d,)
    assert sd[p + "global_rep.0.pre_norm_attn.1.qkv_proj.block.conv.weight"].shape == (1 + 2 * d, d, 1, 1)
    assert sd[p + "global_rep.0.pre_norm_attn.1.out_proj.block.conv.bias"].shape == (d,)
    assert sd[p + "global_rep.1.pre_norm_ffn.1.block.conv.weight"].shape == (128, d, 1, 1)
    assert sd[p + "global_rep.1.pre_norm_ffn.3.block.conv.weight"].shape == (d, 128, 1, 1)
    assert sd[p + "global_rep.2.bias"].shape == (d,)
    assert sd[p + "conv_proj.block.conv.weight"].shape == (c, 2 * d, 1, 1)
    assert sd["classifier.1.weight"].shape == (1000, 256)
    assert not [k for k in sd if k.startswith("conv_1x1_exp")]


@pytest.mark.parametrize("name", ["mobilevitv3_xxs", "mobilevitv3_0_5"])
def test_cvnets_checkpoint_round_trip(name, tmp_path):
    model, sd = _cvnets_sd(name, seed=4)
    lay = get_layout("mobilevitv3", "cvnets")
    assert lay.to_ours(sd).keys() == model.state_dict().keys()
    path = tmp_path / "checkpoint_ema_best.pt"
    torch.save(sd, path)
    loaded = mobexport.create_model(name, weights=path)
    assert loaded.loaded_from == "cvnets (train form)"
    x = torch.randn(1, 3, 256, 256)
    with torch.no_grad():
        assert torch.equal(loaded(x), model.eval()(x))


def test_wrong_shapes_raise_weights_error(tmp_path):
    _, sd = _cvnets_sd("mobilevitv3_xxs")
    key = "layer_3.1.fusion.block.conv.weight"
    sd[key] = sd[key][:, :64]  # only the local half of the fusion input
    path = tmp_path / "bad.pt"
    torch.save(sd, path)
    with pytest.raises(WeightsError, match="fusion"):
        mobexport.create_model("mobilevitv3_xxs", weights=path)
    with pytest.raises(WeightsError, match="mis-shaped"):  # an XXS file into an XS model
        mobexport.create_model("mobilevitv3_xs", weights=path)


# ---------------------------------------------------------------------------------------------- specs

@pytest.mark.parametrize("name", V1 + V2)
def test_spec_preprocessing_and_numbers(name):
    spec = mobexport.get_spec(name)
    pre = spec.preprocessing
    assert spec.kind == "hybrid" and spec.input_size == (3, 256, 256)
    assert (pre.resize, pre.crop, pre.mean, pre.std) == (288, 256, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
    if name in V1:
        assert (spec.color, pre.interpolation) == ("BGR", "bilinear")
    else:
        assert (spec.color, pre.interpolation) == ("RGB", "bicubic")
    assert spec.reference.params and spec.reference.macs and spec.published.macs
    assert "cvnets-profiler" in spec.notes


def test_groupnorm1_matches_torch_groupnorm_with_rank4_ops_only():
    from mobexport.exporter.layers.mobilevit import GroupNorm1

    torch.manual_seed(0)
    ours, ref = GroupNorm1(12), torch.nn.GroupNorm(1, 12)
    with torch.no_grad():
        ref.weight.uniform_(0.5, 1.5)
        ref.bias.uniform_(-0.5, 0.5)
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(2, 12, 4, 9) * 3 + 1
    assert torch.allclose(ours(x), ref(x), atol=1e-5)
    ep = torch.export.export(ours, (x,))
    ranks = {len(n.meta["val"].shape) for n in ep.graph.nodes if "val" in n.meta and hasattr(n.meta["val"], "shape")}
    assert max(ranks) <= 4
