"""Zoo III (issue #23): ResNet/ResNeXt, MobileNetV1, ShuffleNetV1/V2, RegNetX/Y, EfficientNet-B0–B3, EfficientNetV2,
ECA-NFNet-L0 (scaled weight standardization folded at deploy).

Reference counts and key layouts come from tests/fixtures/zoo3_refs.json, recorded by scripts/make_zoo3_refs.py
with the reference implementations themselves (torchvision 0.29.1, timm 1.0.31, the ShuffleNetV1 authors' code; the reference of each model is
named in the file and in ``REFERENCE`` below). Models are built on the meta device where only shapes matter, so
the whole file runs in seconds. That every reference layout computes the reference function (BatchNorm
conventions, padding) is tests/test_golden.py's job; the train/deploy equivalence at the spec's input size is
tests/test_models.py's; here the deploy form is checked at a small input with randomized statistics too.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch

import mobexport
from mobexport.exporter import weights as W
from mobexport.exporter.errors import WeightsError
from mobexport.exporter.layers.ws_conv import ScaledStdConv2d
from mobexport.exporter.passes.fold_batchnorm import bn_modules
from mobexport.exporter.profile import count_params, profile_ops
from mobexport.exporter.testing import randomize_batchnorm, rel_max_error

REFS = json.loads((Path(__file__).parent / "fixtures" / "zoo3_refs.json").read_text())

# model -> (the count reference, its train-form params, its MACs at the spec's input size)
REFERENCE = {
    "resnet18": ("torchvision resnet18", 11_689_512, 1_814_073_344),
    "resnet50": ("torchvision resnet50", 25_557_032, 4_089_184_256),
    "resnext50_32x4d": ("torchvision resnext50_32x4d", 25_028_904, 4_230_479_872),
    "mobilenetv1_100": ("timm mobilenetv1_100", 4_231_976, 568_740_352),
    "mobilenetv1_075": ("timm _gen_mobilenet_v1 x0.75", 2_585_560, 325_400_448),
    "mobilenetv1_050": ("timm _gen_mobilenet_v1 x0.5", 1_331_592, 149_497_088),
    "shufflenetv2_050": ("torchvision shufflenet_v2_x0_5", 1_366_792, 40_476_448),
    "shufflenetv2_100": ("torchvision shufflenet_v2_x1_0", 2_278_604, 144_907_992),
    "shufflenetv2_150": ("torchvision shufflenet_v2_x1_5", 3_503_624, 295_759_392),
    "shufflenetv2_200": ("torchvision shufflenet_v2_x2_0", 7_393_996, 583_253_464),
    "regnetx_004": ("torchvision regnet_x_400mf", 5_495_976, 413_812_608),
    "regnetx_008": ("torchvision regnet_x_800mf", 7_259_656, 799_699_712),
    "regnetx_016": ("torchvision regnet_x_1_6gf", 9_190_136, 1_602_849_792),
    "regnety_004": ("torchvision regnet_y_400mf", 4_344_144, 401_842_848),
    "regnety_008": ("torchvision regnet_y_800mf", 6_432_512, 833_856_256),
    "regnety_016": ("torchvision regnet_y_1_6gf", 11_202_430, 1_612_076_160),
    "efficientnet_b0": ("torchvision efficientnet_b0", 5_288_548, 385_814_752),
    "efficientnet_b1": ("torchvision efficientnet_b1", 7_794_184, 686_802_832),
    "efficientnet_b2": ("torchvision efficientnet_b2", 9_109_994, 993_561_872),
    "efficientnet_b3": ("torchvision efficientnet_b3", 12_233_232, 1_827_141_392),
    "efficientnetv2_b0": ("timm tf_efficientnetv2_b0", 7_139_704, 718_086_176),
    "efficientnetv2_s": ("torchvision efficientnet_v2_s", 21_458_488, 8_365_617_152),
    "eca_nfnet_l0": ("timm eca_nfnet_l0 (at 288)", 24_143_924, 7_014_465_280),
    "shufflenetv1_g3_100": ("megvii-model/ShuffleNet-Series@aa91feb ShuffleNetV1 1.0x g=3", 1_864_728, 137_460_672),
}
# recorded listings no layout may accept: same shapes, other numerics (the family file says why)
REFUSED = {("efficientnetv2_s", "timm"): "timm tf_efficientnetv2_s pads TF-SAME, our V2-S symmetric (torchvision)"}
MODELS = list(REFERENCE)


def _meta(name: str) -> torch.nn.Module:
    with torch.device("meta"):
        return mobexport.create_model(name)


def test_every_zoo3_model_is_registered_with_its_reference_numbers():
    assert set(MODELS) <= set(mobexport.list_models())
    for name, (_, params, macs) in REFERENCE.items():
        ref = mobexport.get_spec(name).reference
        assert (ref.params, ref.macs) == (params, macs), name
        first = next(iter(REFS[name].values()))  # the recorded reference is the one named here
        assert (first["params"], first["macs"]) == (params, macs), name


@pytest.mark.parametrize("name", MODELS)
def test_train_params_equal_the_reference_exactly(name):
    assert count_params(_meta(name)) == REFERENCE[name][1]


@pytest.mark.parametrize("name", MODELS)
def test_deploy_macs_equal_the_reference_exactly(name):
    spec = mobexport.get_spec(name)
    deploy = mobexport.reparameterize(_meta(name))
    assert not bn_modules(deploy)
    macs = sum(r.macs for r in profile_ops(deploy, torch.empty(1, *spec.input_size, device="meta")))
    assert macs == REFERENCE[name][2]


@pytest.mark.parametrize("name, layout", [(n, lay) for n in MODELS for lay in REFS[n] if (n, lay) not in REFUSED])
def test_reference_key_layout_maps_onto_our_model_and_back(name, layout):
    """Every recorded reference listing (torchvision and/or timm) maps key for key and shape for shape onto our
    model through a registered layout, and back onto the reference's own keys."""
    theirs = {k: torch.empty(s, device="meta") for k, s in REFS[name][layout]["keys"]}
    ours = {k: tuple(v.shape) for k, v in _meta(name).state_dict().items()}
    family = mobexport.get_spec(name).family
    matches = []
    for lay in W.layouts(family):
        try:
            mapped = lay.to_ours(theirs)
        except KeyError:
            continue
        if {k: tuple(v.shape) for k, v in mapped.items()} == ours:
            matches.append(lay.name)
            assert lay.from_ours(mapped).keys() == theirs.keys()
    assert matches, f"{name}: no registered {family} layout maps the {layout} listing"


@pytest.mark.parametrize("name", MODELS)
def test_deploy_form_equals_train_form_with_random_statistics(name):
    torch.manual_seed(0)
    model = randomize_batchnorm(mobexport.create_model(name, num_classes=10, input_size=64), seed=1).eval()
    x = torch.randn(2, 3, 64, 64)
    deploy = mobexport.reparameterize(copy.deepcopy(model))
    with torch.no_grad():
        assert rel_max_error(model(x), deploy(x)) <= 1e-5


@pytest.mark.parametrize("name, layout", list(REFUSED))
def test_reference_listing_with_other_numerics_is_refused(name, layout, tmp_path):
    sd = {k: torch.zeros(s) for k, s in REFS[name][layout]["keys"]}
    path = tmp_path / "ref.pth"
    torch.save(sd, path)
    with pytest.raises(WeightsError, match="do not match this model"):
        mobexport.create_model(name, weights=path)


@torch.no_grad()
def _randomize_ws(model: torch.nn.Module, seed: int = 1) -> torch.nn.Module:
    """Gains, biases and per-channel weight offsets/scales away from their init, so a wrong fold shows."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, ScaledStdConv2d):
            c = m.out_channels
            m.gain.copy_(torch.rand(c, 1, 1, 1, generator=g) + 0.5)
            m.bias.copy_(torch.randn(c, generator=g) * 0.1)
            m.weight.copy_(torch.randn(m.weight.shape, generator=g) * (torch.rand(c, 1, 1, 1, generator=g) + 0.5)
                           + torch.randn(c, 1, 1, 1, generator=g))  # per-channel std ~1 >> eps, mean ~N(0, 1)
    return model


def _small_nfnet() -> torch.nn.Module:
    torch.manual_seed(0)
    return _randomize_ws(mobexport.create_model("eca_nfnet_l0", num_classes=10, input_size=64)).eval()


def test_nfnet_train_form_standardizes_its_weights():
    """Scaled WS makes the train form blind to a per-output-channel shift and scale of every conv weight (up to
    the eps under the variance, negligible at weight variances ~1)."""
    model, x = _small_nfnet(), torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        ref = model(x)
        for m in model.modules():
            if isinstance(m, ScaledStdConv2d):
                m.weight.mul_(3.0).add_(torch.linspace(-1, 1, m.out_channels).reshape(-1, 1, 1, 1))
        assert rel_max_error(ref, model(x)) <= 1e-4


def test_nfnet_deploy_form_is_plain_conv_with_the_standardization_folded():
    model, x = _small_nfnet(), torch.randn(2, 3, 64, 64)
    deploy = mobexport.reparameterize(copy.deepcopy(model))
    assert not [k for k in deploy.state_dict() if k.endswith(".gain")]
    assert all(m.deployed for m in deploy.modules() if isinstance(m, ScaledStdConv2d))
    assert all(b.beta == 1.0 for b in deploy.modules() if hasattr(b, "beta"))  # β folded into the convs
    ops = {r.op for r in profile_ops(deploy, x)}
    assert not ops & {"var", "var_mean", "rsqrt", "native_batch_norm", "_native_batch_norm_legit"}, ops
    with torch.no_grad():
        err = rel_max_error(model(x), deploy(x))
    assert err <= 1e-5, f"eca_nfnet_l0: scaled-WS fold relative max error {err:.2e}"
