"""Cross-layer equalization of linear streams, symmetric activation ranges, mirrored calibration top-up."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from mobexport.quantization.equalization import RTOL, equalized, find_groups  # noqa: E402
from mobexport.quantization.ranges import RangeCollector, mse_symmetric_range  # noqa: E402


class Bottlenecks(nn.Module):
    """stem(ReLU6) → project (linear) ⊕ residual → head(ReLU6): one linear stream of three tensors."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, 1, 1), nn.ReLU6())
        self.project = nn.Conv2d(16, 8, 1)
        self.expand = nn.Sequential(nn.Conv2d(8, 24, 1), nn.ReLU6())
        self.project2 = nn.Conv2d(24, 8, 1)
        self.head = nn.Sequential(nn.Conv2d(8, 32, 1), nn.ReLU6())
        self.fc = nn.Linear(32, 10)

    def forward(self, x):
        s = self.project(self.stem(x))
        s = s + self.project2(self.expand(s))
        return self.fc(self.head(s).mean((2, 3)))


def _model_and_images():
    torch.manual_seed(0)
    m = Bottlenecks().eval()
    with torch.no_grad():  # wide per-channel ranges on the stream, as BN folding produces
        m.project.weight.mul_(torch.logspace(-1, 1, 8).reshape(-1, 1, 1, 1))
    rng = np.random.default_rng(0)
    return m, [rng.standard_normal((1, 3, 16, 16)).astype(np.float32) for _ in range(6)]


def test_groups_are_the_linear_stream_only():
    m, _ = _model_and_images()
    groups = find_groups(m)
    assert len(groups) == 1
    assert sorted(groups[0].producers) == ["project", "project2"]
    assert sorted(groups[0].consumers) == ["expand.0", "head.0"]  # never across a ReLU6


def test_equalized_copy_is_the_same_function_with_flatter_stream():
    m, images = _model_and_images()
    before = {k: v.clone() for k, v in m.state_dict().items()}
    eq, info = equalized(m, images)
    assert "skipped" not in info and info["groups"] == 1 and info["max_rel_error"] <= RTOL
    assert all(torch.equal(before[k], v) for k, v in m.state_dict().items())  # the original is untouched
    x = torch.from_numpy(images[0])
    with torch.no_grad():
        y, ye = m(x), eq(x)
        assert float((y - ye).abs().max() / y.abs().max()) <= RTOL
        spread = [float(a.abs().amax((0, 2, 3)).max() / a.abs().amax((0, 2, 3)).min())
                  for a in (mod.project(mod.stem(x)) for mod in (m, eq))]
    assert spread[1] < spread[0] / 3  # per-channel ranges of the stream tensor are closer together


def test_symmetric_range_clips_outliers_and_keeps_zero_point_zero():
    rng = np.random.default_rng(1)
    v = rng.laplace(size=100_000).astype(np.float32)  # heavy tails, like pre-activation tensors
    amax = float(np.abs(v).max())
    lo, hi = mse_symmetric_range(v, amax)
    assert lo == -hi and 2.0 < hi < 0.9 * amax
    col = RangeCollector()
    col.add("t", v)
    assert col.ranges("minmax-symmetric")["t"] == (-amax, amax)
    assert col.ranges("mse", open_top=("t",))["t"][1] >= float(v.max())  # logits: top left open


def test_calibration_is_topped_up_with_mirrors():
    from mobexport.quantization.calibration import _with_mirrors

    imgs = [np.arange(12, dtype=np.float32).reshape(1, 1, 3, 4) + i for i in range(3)]
    out, n = _with_mirrors(imgs, 5)
    assert n == 2 and len(out) == 5 and np.array_equal(out[3], imgs[0][..., ::-1])
    assert _with_mirrors(imgs, 3)[1] == 0
