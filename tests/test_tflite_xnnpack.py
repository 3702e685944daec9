"""XNNPACK coverage of the TFLite artifacts (converters/tflite_xnnpack.py): depthwise kernels over 25 taps split
into column bands (same outputs), int8 HARD_SWISH rewritten as ADD/MUL/MUL (same outputs to a quantization step,
every op inside XNNPACK), and the export-time 'int8 slower than fp32 here' note."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mobexport.converters import get_converter
from mobexport.converters import tflite_xnnpack as tx

_AVAIL = get_converter("tflite").is_available()
needs_tflite = pytest.mark.skipif(not _AVAIL.ok, reason=_AVAIL.reason or "tflite unavailable")


class _DW(torch.nn.Module):
    def __init__(self, k, stride, dilation=1):
        super().__init__()
        pad = (dilation * (k[0] - 1) // 2, dilation * (k[1] - 1) // 2)
        self.dw = torch.nn.Conv2d(12, 12, k, stride, pad, dilation, groups=12)
        self.small = torch.nn.Conv2d(12, 12, 5, 1, 2, groups=12)  # 25 taps: left alone

    def forward(self, x):
        return self.small(self.dw(x))


@pytest.mark.parametrize("k,stride,dilation", [((7, 7), 1, 1), ((7, 7), 2, 1), ((5, 7), 1, 1), ((9, 9), 2, 1),
                                               ((7, 7), 1, 2)])
def test_split_depthwise_same_outputs(k, stride, dilation):
    torch.manual_seed(0)
    m = _DW(k, stride, dilation).eval()
    x = torch.randn(1, 12, 23, 19)
    split, n = tx.split_large_depthwise(m)
    assert n == 1 and split is not m and isinstance(m.dw, torch.nn.Conv2d)  # the original is untouched
    assert type(split.dw).__name__ == "SplitDepthwise" and isinstance(split.small, torch.nn.Conv2d)
    assert all(w.shape[-1] * w.shape[-2] <= tx.XNNPACK_DW_MAX_TAPS for w in split.dw.weights)
    with torch.no_grad():
        torch.testing.assert_close(split(x), m(x), rtol=1e-5, atol=1e-5)


def test_split_depthwise_leaves_small_kernels():
    m = _DW((5, 5), 1).eval()
    assert tx.split_large_depthwise(m) == (m, 0)


@pytest.fixture(scope="module")
def int8_hswish(tmp_path_factory):
    """A tiny conv + hard-swish model, full-int8 with ai-edge-quantizer as the converter does (HARD_SWISH kept)."""
    import os

    os.environ.setdefault("LITERT_TORCH_SHOW_PROGRESS", "n")
    import litert_torch
    from ai_edge_quantizer import quantizer, recipe

    torch.manual_seed(0)
    m = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.Hardswish(),
                            torch.nn.Conv2d(8, 8, 1)).eval()
    x = torch.randn(1, 3, 16, 16)
    d = tmp_path_factory.mktemp("hswish")
    litert_torch.convert(m, (x,)).export(str(d / "f.tflite"))
    qt = quantizer.Quantizer(str(d / "f.tflite"), recipe.static_wi8_ai8())
    calib = [{"args_0": torch.randn(1, 3, 16, 16).numpy() * 2} for _ in range(8)]
    cr = qt.calibrate({"serving_default": calib})
    qt.quantize(cr).export_model(str(d / "q.tflite"), overwrite=True)
    return d


def _run(path, x):
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(path), num_threads=1)
    it.allocate_tensors()
    i, o = it.get_input_details()[0], it.get_output_details()[0]
    it.set_tensor(i["index"], x.astype(i["dtype"]))
    it.invoke()
    return it.get_tensor(o["index"]).astype(np.int32)


@needs_tflite
def test_int8_hard_swish_lowered_into_xnnpack(int8_hswish, tmp_path):
    import shutil

    q = int8_hswish / "q.tflite"
    assert tx.xnnpack_undelegated(q) == {"HARD_SWISH": 1}  # LiteRT 2.3.0 XNNPACK: hard-swish only in float
    low = tmp_path / "low.tflite"
    shutil.copy(q, low)
    assert tx.lower_int8_hard_swish(low) == 1
    assert tx.xnnpack_undelegated(low) == {}
    assert tx.lower_int8_hard_swish(low) == 0  # nothing left to rewrite
    x = np.random.default_rng(0).integers(-128, 128, (1, 3, 16, 16))
    a, b = _run(q, x), _run(low, x)
    assert np.abs(a - b).max() <= 2, "the rewrite moves outputs by more than two int8 steps"
    assert np.abs(a - b).mean() < 0.5 and a.std() > 5  # a real signal, mostly identical codes


@needs_tflite
def test_int8_vs_fp32_note(int8_hswish, monkeypatch):
    q, f = int8_hswish / "q.tflite", int8_hswish / "f.tflite"
    monkeypatch.setattr(tx, "_min_ms", lambda path, runs, warmup: 2.0 if path == q else 1.0)
    slow = tx.int8_vs_fp32(f, q)
    assert slow["speedup"] == 0.5 and slow["xnnpack_undelegated"] == {"HARD_SWISH": 1}
    assert slow["note"].startswith("int8 slower than fp32 here: 2.00 ms vs 1.00 ms") and "HARD_SWISH" in slow["note"]
    monkeypatch.setattr(tx, "_min_ms", lambda path, runs, warmup: 0.98 if path == q else 1.0)
    tie = tx.int8_vs_fp32(f, q)
    assert tie["note"].startswith("int8 no faster than fp32 here (under 5 % gain): 0.98 ms vs 1.00 ms"), tie
    monkeypatch.setattr(tx, "_min_ms", lambda path, runs, warmup: 0.5 if path == q else 1.0)
    assert "note" not in tx.int8_vs_fp32(f, q)
    calls = []  # both graphs timed in alternating rounds, each round's min kept
    monkeypatch.setattr(tx, "_min_ms", lambda path, runs, warmup: calls.append(path) or (2.0 - 0.1 * len(calls)))
    r = tx.int8_vs_fp32(f, q)
    assert calls == [f, q] * tx.SPEED_ROUNDS and r["fp32_ms"] == 1.5 and r["int8_ms"] == 1.4


def test_export_json_carries_the_performance_notes(tmp_path):
    from mobexport.converters.pipeline import ExportResult
    from mobexport.exporter.status import Status

    note = "int8 slower than fp32 here: 2.00 ms vs 1.00 ms (ops outside XNNPACK's int8 path (HARD_SWISHx1))"
    r = ExportResult("m", "tflite-w8a8", Status.OK, tmp_path / "m.tflite", tmp_path / "manifest.json",
                     manifest={"performance_notes": [note]})
    assert r.to_json()["performance_notes"] == [note]
    assert ExportResult("m", "tflite-fp32", Status.OK, tmp_path, tmp_path).to_json()["performance_notes"] == []
