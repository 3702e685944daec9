"""Full-integer int8 with real ImageNet weights on real photos (needs `make assets`).

The int8 artifact must keep the float model's top-1 class on >= 95% of the held-out photos (every assets
photo not used for calibration: ``exporter.assets.split_images``; none is excluded), stay full-integer
(int8 I/O, no float op) and record SQNR in the manifest. Before bias correction and MSE activation ranges,
MobileNetV2 (torchvision weights) reached 60% agreement: a moving-average min/max clipped the logits tensor
(ties at 127) and the BN-folded first depthwise kernels lost their mean to weight rounding.
"""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.assets

MIN_AGREEMENT = 0.95
CASES = {"mobilenetv2_100": "mobilenet_v2-b0353104.pth", "efficientnet_lite0": "efficientnet-lite0-57934424.pth"}


def _export(assets, tmp_path, monkeypatch, model: str, target: str):
    from mobexport.converters.pipeline import export

    monkeypatch.setenv("MOBEXPORT_ASSETS", str(assets))
    monkeypatch.chdir(tmp_path)
    result = export(model, target, weights=assets / "weights" / CASES[model], out_dir=tmp_path / "out")
    return result, json.loads(result.manifest_path.read_text())


MNV2_OPEN = pytest.mark.xfail(strict=True, reason="MobileNetV2 (torchvision) tflite-w8a8 measured 0.92 agreement, "
                              "18.3 dB (was 0.60, 17.4 dB): the last stage (blocks.16 project, head conv) still "
                              "loses ~7 dB to per-tensor activations; needs cross-layer equalization")


@pytest.mark.parametrize("model", [pytest.param("mobilenetv2_100", marks=MNV2_OPEN), "efficientnet_lite0"])
def test_tflite_w8a8_keeps_float_top1_on_held_out_photos(assets, tmp_path, monkeypatch, model):
    result, manifest = _export(assets, tmp_path, monkeypatch, model, "tflite-w8a8")
    fid = manifest["fidelity"]
    assert manifest["status"] == "OK", fid["failures"]
    assert fid["samples"] >= 20 and fid["inputs"].endswith("held-out photos")
    assert fid["metrics"]["top1_agreement"] >= MIN_AGREEMENT, fid["metrics"]
    assert isinstance(fid["metrics"]["sqnr_db"], float) and fid["metrics"]["sqnr_db"] > 15.0
    assert manifest["tflite"]["input_dtype"] == "int8" and manifest["tflite"]["output_dtype"] == "int8"
    assert manifest["tflite"]["float_ops"] == {}
    assert manifest["quantization"]["bias_correction"]["layers"] > 0
