"""The rules behind the results pages, without a browser: the regression verdict and its noise band, the
histogram's bin count (checked against numpy's Freedman-Diaconis), the Pareto frontier and the model grid."""

from __future__ import annotations

import random

import numpy as np
import pytest

from mobexport.benchmarks.web import data


def _row(rid: int, min_ms: float, **kw) -> dict:
    base = {"id": rid, "model": "m", "target": "onnx-fp32", "device": "Pixel", "runtime": "litert",
            "compute_unit": "cpu", "threads": 4, "batch_size": 1, "min_ms": min_ms, "harness": "android_app"}
    return {**base, **kw}


def _verdict(mins: list[float], baselines=frozenset()) -> data.Verdict:
    [v] = data.regressions([_row(i + 1, m) for i, m in enumerate(mins)], set(baselines))
    return v


def test_noise_band_is_the_floor_for_quiet_history_and_wider_for_noisy_history():
    sigma, band = data.noise_band([10.0, 10.1, 9.9, 10.0])
    assert sigma == pytest.approx(1.4826 * 0.05 / 10.0) and band == data.NOISE_FLOOR
    sigma, band = data.noise_band([10.0, 11.0, 9.0, 10.0, 12.0])  # MAD 1 on a median of 10
    assert sigma == pytest.approx(0.14826) and band == pytest.approx(3 * 0.14826)
    assert data.noise_band([10.0, 10.5]) == (None, data.DEFAULT_BAND)  # too few runs to estimate the noise


@pytest.mark.parametrize("mins, flag", [
    ([10.0, 10.1, 9.9, 10.0, 10.5], "slower"),  # +5 % beyond the 3 % floor
    ([10.0, 10.1, 9.9, 10.0, 10.2], "same"),  # +2 % within it
    ([10.0, 10.1, 9.9, 10.0, 9.0], "faster"),
    ([10.0, 11.0, 9.0, 10.0, 12.0, 13.0], "same"),  # +8 % but the history is noisy: band 44 %
    ([10.0, 10.9], "same"),  # one earlier run: 10 % default band
    ([10.0, 11.2], "slower"),
    ([10.0], "single"),
])
def test_latest_run_against_the_previous_one(mins, flag):
    assert _verdict(mins).flag == flag


def test_a_pinned_baseline_replaces_the_previous_run_and_configurations_are_apart():
    v = _verdict([10.0, 12.0, 12.1], baselines={1})  # previous run: +0.8 %; the pinned first run: +21 %
    assert v.baseline and v.reference["id"] == 1 and v.flag == "slower"
    assert _verdict([10.0, 12.0, 12.1]).flag == "same"
    rows = [_row(1, 10.0), _row(2, 20.0, threads=1), _row(3, 10.1)]  # another thread count is another config
    verdicts = data.regressions(rows)
    assert len(verdicts) == 2 and all(v.flag in ("same", "single") for v in verdicts)


def test_regressions_are_listed_first_and_the_model_grid_marks_them_and_the_fastest():
    rows = [_row(1, 5.0), _row(2, 8.0), _row(3, 3.0, target="tflite-fp32"), _row(4, 1.0, device="iPhone")]
    verdicts = data.regressions(rows)
    assert verdicts[0].flag == "slower" and verdicts[0].latest["id"] == 2
    targets, devices, cells = data.model_grid(rows, verdicts)
    assert targets == ["onnx-fp32", "tflite-fp32"] and devices == ["Pixel", "iPhone"]
    assert cells[("onnx-fp32", "Pixel")].regressed and not cells[("tflite-fp32", "Pixel")].regressed
    assert cells[("tflite-fp32", "Pixel")].fastest_on_device and cells[("onnx-fp32", "iPhone")].fastest_on_device
    assert not cells[("onnx-fp32", "Pixel")].fastest_on_device


@pytest.mark.parametrize("seed", range(20))
def test_bin_count_is_freedman_diaconis_as_numpy_computes_it(seed):
    rng = random.Random(seed)
    n = rng.randint(5, 3000)
    samples = [rng.lognormvariate(0, rng.uniform(0.01, 1.0)) for _ in range(n)]
    expected = min(data.MAX_BINS, len(np.histogram_bin_edges(samples, bins="fd")) - 1)
    assert data.bin_count(samples) == expected
    edges, counts = data.histogram(samples)
    assert len(counts) == expected and sum(counts) == n and len(edges) == expected + 1
    np_counts, _ = np.histogram(samples, bins=expected)
    assert abs(np.asarray(counts) - np_counts).sum() <= 2 * expected  # only samples on an edge may differ


def test_histogram_of_degenerate_samples():
    assert data.histogram([2.0, 2.0, 2.0]) == ([2.0, 3.0], [3])
    assert data.bin_count([1.0, 1.0, 1.0, 1.0, 5.0]) == 4  # IQR 0: Sturges, ceil(log2 5) + 1


def test_frontier_keeps_only_points_nothing_beats():
    pts = [{"x": 1.0, "y": 70.0}, {"x": 2.0, "y": 75.0}, {"x": 3.0, "y": 72.0}, {"x": 4.0, "y": 80.0},
           {"x": 2.0, "y": 60.0}]
    assert [p["x"] for p in data.frontier(pts, higher_is_better=True)] == [1.0, 2.0, 4.0]
    assert [(p["x"], p["y"]) for p in data.frontier(pts, higher_is_better=False)] == [(1.0, 70.0), (2.0, 60.0)]


def test_filters_search_and_sort():
    rows = [_row(1, 5.0, device="Pixel 8", chip="Tensor G3", os="Android 14", status="OK", weights="random",
                 sha256="ab", timestamp="t"),
            _row(2, 3.0, device="iPhone15,2", chip="A16", os="iOS 17", status="OK", weights="random",
                 sha256="cd", timestamp="t", runtime="coreml")]
    assert [r["id"] for r in data.filter_rows(rows, {"runtime": "coreml"})] == [2]
    assert [r["id"] for r in data.filter_rows(rows, {}, "tensor pixel")] == [1]
    assert data.filter_rows(rows, {}, "tensor a16") == []
    assert [r["id"] for r in data.sort_rows(rows, "min_ms", False)] == [2, 1]
    assert [r["id"] for r in data.sort_rows([*rows, _row(3, 1.0, threads=None)], "threads", True)][-1] == 3


def test_the_pages_assets_ship_as_package_data():
    from pathlib import Path

    import tomllib

    root = Path(__file__).resolve().parents[1]
    cfg = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert "static/*" in cfg["package-data"]["mobexport.benchmarks.web"]
    from mobexport.benchmarks.web import STATIC

    for name in STATIC:
        assert (root / "benchmarks" / "web" / "static" / name).is_file(), name


def test_the_server_with_its_pages_imports_no_torch(tmp_path):
    import subprocess
    import sys

    code = ("import sys; from mobexport.benchmarks.server import create_app; "
            f"create_app({str(tmp_path / 'x.db')!r}, artifacts_dir={str(tmp_path)!r}); print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
