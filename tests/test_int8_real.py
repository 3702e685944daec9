"""Full-integer int8 with real ImageNet weights on real photos (needs `make assets`).

The int8 artifact must keep the float model's top-1 class on >= 95% of the held-out photos (every assets
photo not used for calibration; ``quantization.calibration`` makes the split, none is excluded), pass its
structural checks (TFLite: int8 I/O, no float op; TensorRT: symmetric int8 Q/DQ) and record SQNR in the
manifest.

The measured agreement and SQNR of each model and target are in results/matrix.md (``mobexport sweep --table``, ``make matrix``); the
agreement's confidence interval over more crops of the same held-out photos comes from
``scripts/int8_agreement.py``. The flips are mostly float near-ties (top-2 logits close together). Where full
int8 stays below the gate, the fidelity budget (``--min-agreement``, mixed precision) must reach it.
"""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.assets

MIN_AGREEMENT = 0.95
CASES = {"mobilenetv2_100": "mobilenet_v2-b0353104.pth", "efficientnet_lite0": "efficientnet-lite0-57934424.pth"}


def _export(assets, tmp_path, monkeypatch, model: str, target: str, **options):
    from mobexport.converters.pipeline import export

    monkeypatch.setenv("MOBEXPORT_ASSETS", str(assets))
    monkeypatch.chdir(tmp_path)
    result = export(model, target, weights=assets / "weights" / CASES[model], out_dir=tmp_path / "out",
                    options=options)
    return result, json.loads(result.manifest_path.read_text())


def _open(reason: str):
    return pytest.mark.xfail(strict=True, reason=reason)


MNV2_TFLITE = _open("MobileNetV2 (torchvision) tflite-w8a8 is below the agreement gate (results/matrix.md; interval: "
                    "scripts/int8_agreement.py): per-tensor int8 activations, the error spread over every tensor")
MNV2_TRT = _open("MobileNetV2 (torchvision) tensorrt-w8a8 is below the agreement gate (results/matrix.md): symmetric "
                 "int8 (TensorRT's only int8 activation scheme) spends a bit on the never-negative ReLU6 outputs")
LITE0_TRT = _open("EfficientNet-Lite0 tensorrt-w8a8 is below the agreement gate (results/matrix.md; interval: "
                  "scripts/int8_agreement.py): its flips are float near-ties")


def _check_common(manifest) -> dict:
    fid = manifest["fidelity"]
    assert manifest["status"] == "OK", fid["failures"]
    assert fid["samples"] >= 40 and fid["inputs"].endswith("held-out photos")
    assert manifest["quantization"]["bias_correction"]["layers"] > 0
    assert isinstance(fid["metrics"]["sqnr_db"], float)
    return fid["metrics"]


@pytest.mark.parametrize("model", [pytest.param("mobilenetv2_100", marks=MNV2_TFLITE), "efficientnet_lite0"])
def test_tflite_w8a8_keeps_float_top1_on_held_out_photos(assets, tmp_path, monkeypatch, model):
    result, manifest = _export(assets, tmp_path, monkeypatch, model, "tflite-w8a8")
    metrics = _check_common(manifest)
    assert manifest["tflite"]["input_dtype"] == "int8" and manifest["tflite"]["output_dtype"] == "int8"
    assert manifest["tflite"]["float_ops"] == {}
    assert metrics["sqnr_db"] > 15.0
    assert metrics["top1_agreement"] >= MIN_AGREEMENT, metrics


@pytest.mark.parametrize("model", [pytest.param("mobilenetv2_100", marks=MNV2_TRT),
                                   pytest.param("efficientnet_lite0", marks=LITE0_TRT)])
def test_tensorrt_w8a8_keeps_float_top1_on_held_out_photos(assets, tmp_path, monkeypatch, model):
    result, manifest = _export(assets, tmp_path, monkeypatch, model, "tensorrt-w8a8")
    metrics = _check_common(manifest)
    assert manifest["onnx_for_engine"]["nodes"]["QuantizeLinear"] > 0
    assert metrics["sqnr_db"] > 14.0
    assert metrics["top1_agreement"] >= MIN_AGREEMENT, metrics


@pytest.mark.slow  # the slowest default test (two real-weight int8 exports, one with the search): pytest -m slow
def test_range_search_brings_int8_closer_to_float(assets, tmp_path, monkeypatch):
    """--range-search (quantization/range_search.py) on MobileNetV2 tensorrt-w8a8 raises the held-out SQNR by
    more than 1 dB; its ranges reach the Q/DQ model (matched by values in the float ONNX). Its top-1 agreement
    can fall below the int8 gate (scripts/int8_agreement.py --range-search measures it): the searched artifact
    is judged like any other."""
    from mobexport.quantization.validate import POLICIES

    for sub in ("plain", "search"):
        (tmp_path / sub).mkdir()
    _, plain = _export(assets, tmp_path / "plain", monkeypatch, "mobilenetv2_100", "tensorrt-w8a8")
    _, searched = _export(assets, tmp_path / "search", monkeypatch, "mobilenetv2_100", "tensorrt-w8a8",
                          range_search=True)
    rep = searched["quantization"]["range_search"]
    assert rep["backend_tensors_replaced"] > 0 and rep["kl_after"] < rep["kl_before"]
    assert "range_search" not in plain["quantization"]
    m, gate = searched["fidelity"]["metrics"], POLICIES["int8"]
    passes = m["top1_agreement"] >= gate["min_top1_agreement"] and m["sqnr_db"] >= gate["min_sqnr_db"]
    assert searched["status"] == ("OK" if passes else "MISMATCH")
    assert m["sqnr_db"] > plain["fidelity"]["metrics"]["sqnr_db"] + 1.0


@pytest.mark.parametrize("target", ["tflite-w8a8", pytest.param("tensorrt-w8a8", marks=pytest.mark.slow)])
def test_fidelity_budget_reaches_the_gate_on_mobilenetv2(assets, tmp_path, monkeypatch, target):
    """Where full int8 misses 0.95 (the xfails above), ``--min-agreement 0.95`` keeps layers in float until it holds
    on the held-out crops and on the validator's photos; the artifact passes the validator with that gate."""
    result, manifest = _export(assets, tmp_path, monkeypatch, "mobilenetv2_100", target, min_agreement=0.95)
    b = manifest["int8_budget"]
    assert b["met"] and b["full_int8"]["crops"]["top1_agreement"] < MIN_AGREEMENT, b["full_int8"]
    assert b["reached"]["crops"]["top1_agreement"] >= MIN_AGREEMENT
    assert b["reached"]["photos"]["top1_agreement"] >= MIN_AGREEMENT
    assert 0 < len(b["layers_kept"]) < 53 and all(n.endswith(".conv") or n == "classifier" for n in b["layers_kept"])
    assert b["latency"]["budget_ms"] > 0 and b["latency"]["full_int8_ms"] > 0
    m = _check_common(manifest)
    assert m["top1_agreement"] >= MIN_AGREEMENT and manifest["fidelity"]["policy"]["min_top1_agreement"] == 0.95
