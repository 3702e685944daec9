"""Your model through the pipeline: every family at other input sizes and class counts.

One small model per family (plus MNv4-Hybrid-M for Mobile MQA and both MobileViTv3 styles) is built for
``num_classes=10`` at several sizes, square and not, and checked for output shape and train == deploy after
``reparameterize`` with randomized BatchNorm. ``ModelSpec.with_shape`` / ``parse_input_size`` / the size check
and the class-count check are tested on their own, and ``mobexport info`` at a chosen shape.
"""

from __future__ import annotations

import copy
import dataclasses
import json

import numpy as np
import pytest
import torch

from mobexport.api import create_model, get_spec, list_models, reparameterize
from mobexport.cli import main
from mobexport.exporter import registry
from mobexport.exporter.errors import UsageError
from mobexport.exporter.preprocess import preprocess, resize_shorter
from mobexport.exporter.profile import count_macs
from mobexport.exporter.specs import Preprocessing, parse_input_size
from mobexport.exporter.testing import randomize_batchnorm, rel_max_error

# the smallest model of each family; MNv4-Hybrid-M (Mobile MQA with K/V downsampling) and both MobileViTv3 styles
MODELS = ["mobileone_s0", "repvgg_a0", "mobilenetv2_100", "mobilenetv3_small_100", "efficientnet_lite0",
          "mnv4_conv_s", "mnv4_hybrid_m", "moga_a", "mobilevitv3_xxs", "mobilevitv3_0_5",
          "resnet18", "mobilenetv1_050", "shufflenetv2_050", "regnety_004",
          "efficientnet_b0", "efficientnetv2_b0", "shufflenetv1_g3_100",
          "eca_nfnet_l0"]
# square sizes that are multiples of the stride, one that is not (odd maps: TF-SAME pads, MobileViT interpolates),
# and non-square ones
SHAPES = [160, 192, 256, 320, (224, 288), (193, 250)]


def test_every_family_is_covered():
    families = {get_spec(n).family for n in list_models()}
    assert {get_spec(n).family for n in MODELS} == families
    assert any(get_spec(n).kind == "hybrid" and get_spec(n).family == "mobilenetv4" for n in MODELS)


@pytest.mark.parametrize("size", SHAPES, ids=str)
@pytest.mark.parametrize("name", MODELS)
def test_forward_and_reparameterize_at_size(name, size):
    torch.manual_seed(0)
    model = randomize_batchnorm(create_model(name, num_classes=10, input_size=size))
    h, w = (size, size) if isinstance(size, int) else size
    spec = model.mobexport_spec
    assert spec.input_size == (3, h, w) and spec.num_classes == 10 and spec.preprocessing.crop_hw == (h, w)
    x = torch.randn(2, *spec.input_size, generator=torch.Generator().manual_seed(1))
    deploy = reparameterize(copy.deepcopy(model))
    with torch.no_grad():
        ref, out = model(x), deploy(x)
    assert ref.shape == out.shape == (2, 10)
    assert torch.isfinite(ref).all()
    assert rel_max_error(ref, out) <= 1e-4


def test_create_model_default_shape_carries_registered_spec():
    model = create_model("mobilenetv3_small_100")
    assert model.mobexport_spec == get_spec("mobilenetv3_small_100") == registry.get_spec("mobilenetv3_small_100")
    assert model(torch.randn(1, 3, 224, 224)).shape == (1, 1000)


def test_user_checkpoint_round_trip_at_other_shape(tmp_path):
    """A fine-tuned 10-class, 192x256 model saved as a state dict loads back into the same shape."""
    torch.manual_seed(3)
    model = randomize_batchnorm(create_model("mobilenetv3_small_100", num_classes=10, input_size="192x256"))
    path = tmp_path / "finetuned.pth"
    torch.save(model.state_dict(), path)
    loaded = create_model("mobilenetv3_small_100", weights=path, num_classes=10, input_size=(192, 256))
    x = torch.randn(1, 3, 192, 256)
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))
    assert loaded.mobexport_spec.default_weights is None


# ------------------------------------------------------------------------------------------------ MACs


def _deploy_macs(name: str, size) -> int:
    model = reparameterize(create_model(name, num_classes=10, input_size=size))
    return count_macs(model, model.mobexport_spec.input_size)


@pytest.mark.parametrize("name", ["repvgg_a0", "mnv4_conv_s", "mobilenetv2_100"])
def test_cnn_macs_scale_with_area(name):
    base = _deploy_macs(name, 224)
    for s in (160, 256, 320):
        macs = _deploy_macs(name, s)
        assert abs(macs / base - (s / 224) ** 2) < 0.05 * (s / 224) ** 2, (s, macs, base)
    assert _deploy_macs(name, 256) > base
    assert _deploy_macs(name, (224, 288)) > base  # more pixels, more work


def test_attention_macs_grow_faster_than_area():
    """Self-attention costs N² in the tokens: MobileViTv3 v1 grows more than the pixel count."""
    small, large = _deploy_macs("mobilevitv3_xxs", 256), _deploy_macs("mobilevitv3_xxs", 320)
    assert large / small > (320 / 256) ** 2


def test_info_measures_macs_at_the_chosen_shape(capsys):
    assert main(["info", "mnv4_conv_s", "--num-classes", "10", "--input-size", "192x256", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["input_size"] == [3, 192, 256] and d["num_classes"] == 10
    assert d["measured"]["deploy_macs"] == _deploy_macs("mnv4_conv_s", (192, 256))
    model = create_model("mnv4_conv_s", num_classes=10, input_size=(192, 256))
    assert d["measured"]["train_params"] == sum(p.numel() for p in model.parameters())
    assert d["published"] == {"params": None, "macs": None, "top1": None}
    assert d["preprocessing"]["crop"] == [192, 256]


def test_info_text_at_other_size_shows_params_but_not_macs(capsys):
    assert main(["info", "repvgg_a0", "--input-size", "256"]) == 0
    out = capsys.readouterr().out
    assert "input=(3, 256, 256)" in out and "shaped:" in out and "crop 256x256" in out
    params_line = next(line for line in out.splitlines() if line.startswith("params"))
    assert "reference 8.31M" in params_line  # params of the 1000-class model still apply
    macs_line = next(line for line in out.splitlines() if line.startswith("MACs"))
    assert "published –" in macs_line and "reference –" in macs_line


# ------------------------------------------------------------------------------------------------ specs


def test_with_shape_size_only_keeps_params_and_weights():
    spec = get_spec("mobilenetv2_100")
    s = spec.with_shape(input_size=160)
    assert s.input_size == (3, 160, 160) and s.num_classes == 1000
    assert s.preprocessing.crop == 160 and s.preprocessing.resize == round(160 * 256 / 224) == 183
    assert s.preprocessing.mean == spec.preprocessing.mean and s.preprocessing.color == spec.preprocessing.color
    assert s.published.params == spec.published.params and s.reference.params == spec.reference.params
    assert s.published.macs is s.published.top1 is s.reference.macs is None
    assert s.default_weights == spec.default_weights is not None
    assert get_spec("mobilenetv2_100", input_size="160") == s


def test_with_shape_classes_clear_numbers_and_weights():
    spec = get_spec("mobilenetv2_100")
    s = spec.with_shape(num_classes=10)
    assert s.num_classes == 10 and s.input_size == spec.input_size and s.preprocessing == spec.preprocessing
    assert s.published == s.reference == type(spec.published)()
    assert s.default_weights is None
    assert "10 classes" in s.notes


def test_with_shape_non_square():
    spec = get_spec("mnv4_hybrid_m")  # 256, resize 269
    s = spec.with_shape(input_size=(224, 288))
    assert s.input_size == (3, 224, 288)
    assert s.preprocessing.crop == (224, 288) and s.preprocessing.crop_hw == (224, 288)
    assert s.preprocessing.resize == round(288 * 269 / 256)
    assert spec.with_shape(input_size="224x288") == spec.with_shape(input_size=(3, 224, 288)) == s


@pytest.mark.parametrize("name", ["mobileone_s0", "mobilevitv3_0_5", "efficientnet_lite1"])
def test_unchanged_shape_is_the_same_spec(name):
    spec = get_spec(name)
    size = spec.input_size[1]
    assert spec.with_shape() == spec
    assert spec.with_shape(num_classes=1000, input_size=size) == spec
    assert spec.with_shape(input_size=spec.input_size) == spec
    assert get_spec(name, num_classes=1000, input_size=f"{size}x{size}") == spec


def test_crop_hw_of_registered_specs_is_square():
    for name in list_models():
        pre = get_spec(name).preprocessing
        assert pre.crop_hw == (pre.crop, pre.crop) == tuple(get_spec(name).input_size[1:])


@pytest.mark.parametrize("text,expected", [
    ("224", (224, 224)), ("224x288", (224, 288)), (" 224 X 288 ", (224, 288)), ("224×288", (224, 288)),
    ("32", (32, 32)), ("1x1", (1, 1)),
])
def test_parse_input_size(text, expected):
    assert parse_input_size(text) == expected


@pytest.mark.parametrize("text", ["", "x", "224x", "x224", "0", "0x5", "5x0", "-1", "22.5", "1x2x3", "abc",
                                  "224,288", "²", None, 224])
def test_parse_input_size_rejects_junk(text):
    with pytest.raises(UsageError, match="input size"):
        parse_input_size(text)


@pytest.mark.parametrize("size", [0, -3, (224,), (224, 0), (224, 288, 3), (4, 224, 288), 2.5, True, "big"])
def test_bad_input_size_values(size):
    with pytest.raises(UsageError, match="input size"):
        get_spec("mobilenetv2_100", input_size=size)


@pytest.mark.parametrize("n", [0, -1, "x", "10", 2.0, True])
def test_bad_num_classes(n):
    with pytest.raises(UsageError, match="num_classes must be a positive integer"):
        create_model("mobilenetv3_small_100", num_classes=n)


def test_bad_num_classes_in_get_spec():
    with pytest.raises(UsageError, match="num_classes"):
        get_spec("repvgg_a0", num_classes=-1)


@pytest.fixture
def builds(monkeypatch):
    """Names whose builder ran (the real builders, called through; for 'checked before building')."""
    built = []
    for name in ("mobilevitv3_xs", "mnv4_hybrid_m"):
        entry = registry._MODELS[name]

        def spy(*a, _b=entry.builder, _n=name, **kw):
            built.append(_n)
            return _b(*a, **kw)

        monkeypatch.setitem(registry._MODELS, name, registry.Entry(entry.spec, spy))
    return built


@pytest.mark.parametrize("name", ["mobilevitv3_xs", "mnv4_hybrid_m"])
@pytest.mark.parametrize("size", [16, (31, 224), (224, 8)])
def test_too_small_input_fails_before_building(builds, name, size):
    with pytest.raises(UsageError, match=rf"{name}: input height and width must be at least 32 \(got \d+x\d+\)"):
        create_model(name, input_size=size)
    assert builds == []
    create_model(name, num_classes=10, input_size=32)  # the smallest accepted size builds and runs
    assert builds == [name]


def test_size_multiple_rule_names_model_and_reason():
    spec = dataclasses.replace(get_spec("mobilevitv3_xs"), size_multiple=32, size_reason="2x2 patches per stage")
    with pytest.raises(UsageError, match=r"mobilevitv3_xs: input height and width must be multiples of 32 "
                                         r"\(got 250x256\): 2x2 patches per stage"):
        spec.with_shape(input_size=(250, 256))
    assert spec.with_shape(input_size=(224, 288)).input_size == (3, 224, 288)


@pytest.mark.parametrize("argv,message", [
    (["info", "mnv4_conv_s", "--input-size", "16", "--no-count"], "at least 32"),
    (["info", "mnv4_conv_s", "--input-size", "2x", "--no-count"], "input size must be"),
    (["info", "mnv4_conv_s", "--num-classes", "0", "--no-count"], "num_classes must be a positive integer"),
])
def test_info_bad_shape_exits_2(capsys, argv, message):
    assert main(argv) == 2
    assert message in capsys.readouterr().err


# ------------------------------------------------------------------------------------------------ preprocessing


def _photo(w: int, h: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


@pytest.mark.parametrize("w,h", [(400, 300), (300, 500), (288, 224), (1000, 200)])
def test_preprocess_non_square_crop(w, h):
    spec = get_spec("mobilenetv2_100", input_size=(224, 288))
    x = preprocess(_photo(w, h), spec)
    assert x.shape == (1, 3, 224, 288) and x.dtype == np.float32


def test_resize_scales_up_only_where_the_crop_does_not_fit():
    from PIL import Image

    pre = Preprocessing(resize=224, crop=(224, 288))
    portrait = resize_shorter(Image.fromarray(_photo(300, 600)), pre)  # shorter side 224 would be too narrow
    assert portrait.size == (288, 576)
    landscape = resize_shorter(Image.fromarray(_photo(600, 300)), pre)  # 448x224: the crop fits
    assert landscape.size == (448, 224)
    square = resize_shorter(Image.fromarray(_photo(600, 300)), Preprocessing(resize=256, crop=224))
    assert square.size == (512, 256)  # the torchvision rule, unchanged


def test_centre_crop_is_centred_for_non_square():
    """A photo whose centre H×W block is white and the rest black: the crop is all white."""
    a = np.zeros((300, 400, 3), np.uint8)
    a[38:262, 56:344] = 255  # centre 224x288 of 300x400
    x = preprocess(a, Preprocessing(resize=300, crop=(224, 288), mean=(0, 0, 0), std=(1, 1, 1)))
    assert x.shape == (1, 3, 224, 288) and x.min() == 1.0


def test_calibration_fallback_reads_crop_hw(tmp_path):
    from PIL import Image

    from mobexport.quantization.calibration import _fallback_preprocess

    path = tmp_path / "photo.png"
    Image.fromarray(_photo(300, 500)).save(path)
    spec = get_spec("efficientnet_lite0", input_size=(224, 288))
    assert _fallback_preprocess(path, spec).shape == (1, 3, 224, 288)
    assert _fallback_preprocess(path, get_spec("efficientnet_lite0")).shape == (1, 3, 224, 224)


@pytest.mark.parametrize("name", ["efficientnet_lite0", "mnv4_hybrid_m", "mobilevitv3_xxs", "mobilevitv3_0_5"])
def test_torch_export_at_odd_non_square_size(name):
    """The size-dependent graph code (TF-SAME pads, K/V downsampling, MobileViT's even-size interpolation)
    traces at a fixed odd, non-square input as the exporters see it."""
    deploy = reparameterize(create_model(name, num_classes=10, input_size=(193, 250)))
    x = torch.randn(1, *deploy.mobexport_spec.input_size)
    ep = torch.export.export(deploy, (x,))
    with torch.no_grad():
        assert torch.allclose(ep.module()(x), deploy(x), rtol=1e-4, atol=1e-5)
