"""MobileOne / RepVGG: the shared multi-branch block, the model structure, and reference checkpoint layouts."""

from __future__ import annotations

import copy

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

import mobexport
from mobexport.exporter.errors import WeightsError
from mobexport.exporter.layers.mobileone_block import RepBranchBlock, SqueezeExcite, identity_kernel
from mobexport.exporter.passes.fold_batchnorm import fold_batchnorm
from mobexport.exporter.testing import randomize_batchnorm, rel_max_error
from mobexport.exporter.weights import get_layout

# (in, out, kernel, stride, groups, branches, skip, se_reduced): dw / pw / dense / grouped, k=1/4, SE
BLOCKS = {
    "dw3x3_skip_k4": (16, 16, 3, 1, 16, 4, True, 0),
    "dw3x3_s2_k1": (16, 16, 3, 2, 16, 1, True, 0),
    "pw1x1_skip_k4": (16, 16, 1, 1, 1, 4, True, 0),
    "pw1x1_expand_k1": (16, 32, 1, 1, 1, 1, True, 0),
    "dense3x3_skip": (8, 8, 3, 1, 1, 1, True, 0),
    "dense3x3_no_skip": (8, 8, 3, 1, 1, 1, False, 0),
    "dense3x3_s2_widen": (8, 16, 3, 2, 1, 1, True, 0),
    "grouped2_skip": (16, 16, 3, 1, 2, 1, True, 0),
    "grouped4_skip": (16, 16, 3, 1, 4, 1, True, 0),
    "dw3x3_se_k1": (32, 32, 3, 1, 32, 1, True, 2),
    "pw1x1_se_k4": (16, 32, 1, 1, 1, 4, True, 2),
}


def _block(cfg) -> RepBranchBlock:
    cin, cout, k, s, g, n, skip, se = cfg
    torch.manual_seed(0)
    return RepBranchBlock(cin, cout, k, s, g, num_branches=n, skip=skip, se_reduced=se)


@pytest.mark.parametrize("cfg", BLOCKS.values(), ids=list(BLOCKS))
def test_block_branches_and_shapes(cfg):
    cin, cout, k, s, g, n, skip, se = cfg
    block = _block(cfg).eval()
    assert len(block.conv_kxk) == n
    assert all(b.conv.groups == g and b.conv.kernel_size == (k, k) for b in block.conv_kxk)
    assert (block.conv_scale is not None) == (k > 1)
    assert (block.identity is not None) == (skip and cin == cout and s == 1)
    assert isinstance(block.se, SqueezeExcite if se else nn.Identity)
    y = block(torch.randn(2, cin, 14, 14))
    assert y.shape == (2, cout, (14 - 1) // s + 1, (14 - 1) // s + 1)
    assert (y >= 0).all()  # ReLU is last, after SE


@pytest.mark.parametrize("cfg", BLOCKS.values(), ids=list(BLOCKS))
def test_block_reparameterize_is_equivalent_with_random_bn(cfg):
    block = randomize_batchnorm(_block(cfg), seed=3).eval()
    x = torch.randn(2, cfg[0], 13, 13)
    with torch.no_grad():
        ref = block(x)
        block.reparameterize()
        out = block(x)
    assert block.deployed
    assert rel_max_error(ref, out) <= 1e-5
    keys = set(block.state_dict())
    assert {"reparam_conv.weight", "reparam_conv.bias"} <= keys
    assert not [k for k in keys if k.startswith(("conv_kxk", "conv_scale", "identity"))]
    assert block.reparam_conv.groups == cfg[4] and block.reparam_conv.stride == (cfg[3], cfg[3])
    before = {k: v.clone() for k, v in block.state_dict().items()}
    block.reparameterize()  # idempotent
    assert all(torch.equal(before[k], v) for k, v in block.state_dict().items())


def test_block_merges_after_fold_batchnorm_ran_first():
    """fold_batchnorm alone folds the branch BNs and turns the skip BN into a ChannelAffine; merging still works."""
    block = randomize_batchnorm(_block(BLOCKS["grouped4_skip"]), seed=5).eval()
    x = torch.randn(1, 16, 9, 9)
    with torch.no_grad():
        ref = block(x)
        fold_batchnorm(block)
        block.reparameterize()
        out = block(x)
    assert rel_max_error(ref, out) <= 1e-5


@pytest.mark.parametrize("channels,groups", [(8, 1), (8, 2), (8, 8), (12, 4)])
def test_identity_kernel_is_identity_for_grouped_conv(channels, groups):
    x = torch.randn(1, channels, 5, 5)
    y = nn.functional.conv2d(x, identity_kernel(channels, groups, 3), padding=1, groups=groups)
    assert torch.equal(x, y)


def test_block_rejects_bad_groups():
    with pytest.raises(ValueError, match="groups"):
        RepBranchBlock(6, 6, 3, groups=4)


def _blocks(model):
    return [m for m in model.modules() if isinstance(m, RepBranchBlock)]


def test_mobileone_s4_se_placement_and_widths():
    model = mobexport.create_model("mobileone_s4")
    stage3, stage4 = model.stages[2], model.stages[3]
    with_se = [i for i, b in enumerate(stage3) if isinstance(b.se, SqueezeExcite)]
    assert with_se == list(range(10, 20))  # last 5 (DW, PW) pairs
    assert stage3[10].se.reduce.out_channels == 56 and stage4[1].se.reduce.out_channels == 128
    assert all(isinstance(b.se, SqueezeExcite) for b in stage4)
    assert not [b for s in model.stages[:2] for b in s if isinstance(b.se, SqueezeExcite)]


def test_mobileone_s0_structure():
    model = mobexport.create_model("mobileone_s0")
    assert len(model.stem.conv_kxk) == 1 and model.stem.conv_scale is not None
    assert [len(s) for s in model.stages] == [4, 16, 20, 2]
    dw, pw = model.stages[0][0], model.stages[0][1]
    assert dw.groups == 48 and dw.stride == 2 and len(dw.conv_kxk) == 4 and dw.identity is None
    assert pw.kernel_size == 1 and pw.conv_scale is None and pw.identity is not None
    assert model.head.fc.in_features == 1024


def test_repvgg_group_layers():
    model = mobexport.create_model("repvgg_b1g4")
    groups = [b.groups for s in model.stages for b in s]
    assert len(groups) == 27
    assert [i + 1 for i, g in enumerate(groups) if g == 4] == list(range(2, 27, 2))
    assert model.stem.groups == 1 and model.stem.identity is None
    assert all(s[0].identity is None and s[0].stride == 2 for s in model.stages)


# ------------------------------------------------------------------------------------------ reference layouts

# (model, family, layout, form, keys that must be in the converted state_dict)
LAYOUT_CASES = [
    ("mobileone_s0", "mobileone", "apple", "train",
     ["stage0.rbr_conv.0.conv.weight", "stage0.rbr_scale.bn.running_var", "stage1.0.rbr_conv.3.bn.weight",
      "stage1.1.rbr_skip.running_mean", "stage4.1.rbr_conv.0.conv.weight", "linear.weight"]),
    ("mobileone_s0", "mobileone", "apple", "deploy",
     ["stage0.reparam_conv.weight", "stage0.reparam_conv.bias", "stage3.19.reparam_conv.bias", "linear.bias"]),
    ("mobileone_s0", "mobileone", "timm", "train",
     ["stem.conv_kxk.0.conv.weight", "stem.conv_scale.conv.weight", "stages.0.1.identity.weight",
      "head.fc.weight"]),
    ("mobileone_s0", "mobileone", "timm", "deploy", ["stem.reparam_conv.weight", "stages.3.1.reparam_conv.bias"]),
    ("repvgg_a0", "repvgg", "official", "train",
     ["stage0.rbr_dense.conv.weight", "stage0.rbr_1x1.bn.weight", "stage1.1.rbr_identity.running_var",
      "stage4.0.rbr_dense.bn.bias", "linear.weight"]),
    ("repvgg_a0", "repvgg", "official", "deploy", ["stage0.rbr_reparam.weight", "stage3.13.rbr_reparam.bias"]),
    ("repvgg_a0", "repvgg", "timm", "train",
     ["stem.conv_kxk.conv.weight", "stem.conv_1x1.conv.weight", "stages.0.1.identity.weight", "head.fc.bias"]),
    ("repvgg_a0", "repvgg", "timm", "deploy", ["stem.reparam_conv.weight", "stages.2.13.reparam_conv.weight"]),
]


def _source_model(name: str, form: str) -> nn.Module:
    torch.manual_seed(0)
    model = randomize_batchnorm(mobexport.create_model(name), seed=7).eval()
    return mobexport.reparameterize(model) if form == "deploy" else model


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
@pytest.mark.parametrize("name,family,layout,form,keys", LAYOUT_CASES,
                         ids=[f"{c[0]}-{c[2]}-{c[3]}" for c in LAYOUT_CASES])
def test_reference_layout_round_trip(tmp_path, suffix, name, family, layout, form, keys):
    src = _source_model(name, form)
    ours = src.state_dict()
    ref_sd = get_layout(family, layout).from_ours(ours)
    missing = [k for k in keys if k not in ref_sd]
    assert not missing, f"not in the {layout} layout: {missing}"
    assert get_layout(family, layout).to_ours(ref_sd).keys() == ours.keys()
    path = tmp_path / f"ckpt{suffix}"
    if suffix == ".safetensors":
        save_file({k: v.contiguous() for k, v in ref_sd.items()}, str(path))
    else:
        torch.save(ref_sd, path)
    model = mobexport.create_model(name, weights=path)
    assert model.loaded_from.endswith(f"({form} form)")
    if set(ref_sd) != set(ours):  # a layout identical to ours matches as "mobexport" first
        assert model.loaded_from.startswith(layout)
    loaded = model.state_dict()
    assert loaded.keys() == ours.keys() and all(torch.equal(loaded[k], ours[k]) for k in ours)
    deployed = [b.deployed for b in _blocks(model)]
    assert all(deployed) if form == "deploy" else not any(deployed)
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        assert torch.equal(model(x), src(x))


@pytest.mark.parametrize("name,family,layout,key_pairs", [
    ("mobileone_s4", "mobileone", "apple", [("stages.2.19.se.reduce.weight", "stage3.19.se.reduce.weight"),
                                            ("stages.3.1.se.expand.bias", "stage4.1.se.expand.bias")]),
    ("mobileone_s4", "mobileone", "timm", [("stages.2.19.se.reduce.weight", "stages.2.19.attn.fc1.weight"),
                                           ("stages.3.1.se.expand.bias", "stages.3.1.attn.fc2.bias")]),
    ("repvgg_b1g2", "repvgg", "official", [("stages.2.15.conv_scale.conv.weight", "stage3.15.rbr_1x1.conv.weight")]),
    ("repvgg_b1g2", "repvgg", "timm", [("stages.2.15.conv_kxk.0.bn.bias", "stages.2.15.conv_kxk.bn.bias")]),
])
@pytest.mark.parametrize("form", ["train", "deploy"])
def test_layout_mapping_is_a_bijection(name, family, layout, key_pairs, form):
    """Key mapping only (no file I/O) for the SE keys of S4 and a grouped RepVGG, in both forms."""
    model = mobexport.create_model(name)
    if form == "deploy":
        mobexport.reparameterize(model)
    ours = {k: torch.empty(0) for k in model.state_dict()}
    lay = get_layout(family, layout)
    ref = lay.from_ours(ours)
    assert len(ref) == len(ours) and lay.to_ours(ref).keys() == ours.keys()
    for our_key, ref_key in key_pairs:
        if form == "deploy" and "se." not in our_key:
            our_key, ref_key = _deploy_key(our_key), _deploy_key(ref_key)
        assert our_key in ours and ref_key in ref, (our_key, ref_key)


def _deploy_key(key: str) -> str:
    block = key.split(".conv_")[0].split(".rbr_")[0]
    suffix = "rbr_reparam" if ".rbr_" in key else "reparam_conv"
    return f"{block}.{suffix}.{key.rsplit('.', 1)[1]}"


def test_wrong_shape_reference_checkpoint_names_the_key(tmp_path):
    sd = get_layout("mobileone", "apple").from_ours(mobexport.create_model("mobileone_s0").state_dict())
    sd["stage1.0.rbr_scale.conv.weight"] = torch.zeros(48, 1, 3, 3)
    path = tmp_path / "bad.pth"
    torch.save(sd, path)
    with pytest.raises(WeightsError) as exc:
        mobexport.create_model("mobileone_s0", weights=path)
    msg = str(exc.value)
    assert "mis-shaped" in msg and ("stage1.0.rbr_scale.conv.weight" in msg or
                                    "stages.0.0.conv_scale.conv.weight" in msg), msg


def test_deploy_model_output_matches_train_with_random_bn():
    src = _source_model("mobileone_mu0", "train")
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        ref = src(x)
        out = mobexport.reparameterize(copy.deepcopy(src))(x)
    assert rel_max_error(ref, out) <= 1e-5
