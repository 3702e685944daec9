"""Empirical bias correction (quantization/bias_correction.py): after correction, the layer with int8-rounded
weights has the float layer's mean output on the calibration inputs — for convs (dense and grouped) with
channels in dim 1, and for nn.Linear applied to any rank (ViT blocks: [B, P, N, C], features last).
Exact for 1×1 convs and Linear; for k×k convs the window means differ from the channel mean near the borders
(and padding adds zeros), so there it removes most, not all, of the shift."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from mobexport.quantization.bias_correction import bias_corrected, int8_weight_error


class Wrap(nn.Module):
    def __init__(self, layer: nn.Module):
        super().__init__()
        self.layer = layer

    def forward(self, x):
        return self.layer(x)


def _mean_out(layer: nn.Module, x: torch.Tensor, channels_last: bool) -> torch.Tensor:
    y = layer(x)
    return y.reshape(-1, y.shape[-1]).mean(0) if channels_last else y.mean(dim=(0, 2, 3))


@pytest.mark.parametrize("case", ["conv1x1", "grouped3x3", "linear_rank4"])
def test_corrected_int8_layer_keeps_the_float_mean(case):
    torch.manual_seed(0)
    if case == "linear_rank4":
        layer, shape, channels_last = nn.Linear(24, 16), (2, 4, 6, 24), True  # input not centred: E[x] != 0
    else:
        layer = nn.Conv2d(12, 16, 1) if case == "conv1x1" else nn.Conv2d(12, 16, 3, padding=1, groups=4)
        shape, channels_last = (2, 12, 32, 32), False
    with torch.no_grad():
        layer.weight.mul_(torch.linspace(0.2, 5.0, layer.weight.shape[0]).reshape(-1, *[1] * (layer.weight.dim() - 1)))
    model = Wrap(layer).eval()
    images = [np.asarray(torch.rand(*shape) * 3 + 1, dtype=np.float32) for _ in range(3)]
    x = torch.from_numpy(np.concatenate(images))
    corrected, report = bias_corrected(model, images)
    assert report["layers"] == 1 and report["max_bias_shift"] > 0
    q = corrected.layer
    with torch.no_grad():
        q.weight += int8_weight_error(q.weight)  # what the backend will run: int8-rounded weights
        naive = copy.deepcopy(layer)  # int8-rounded weights, no correction
        naive.weight += int8_weight_error(naive.weight)
        want = _mean_out(model.layer, x, channels_last)
        got, before = _mean_out(q, x, channels_last), _mean_out(naive, x, channels_last)
    left, was = (got - want).abs().max(), (before - want).abs().max()
    if case == "grouped3x3":
        assert left < 0.15 * was, (left, was)  # zero-padded borders: 5-6% of the shift left (5 seeds)
    else:
        torch.testing.assert_close(got, want, rtol=0, atol=2e-5)
        assert was > 10 * left  # there was a bias to correct
    assert torch.equal(model.layer.weight, layer.weight)  # the float reference is untouched

