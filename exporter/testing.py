"""Helpers for tests and benchmark scripts: randomized BatchNorm statistics and output comparison."""

from __future__ import annotations

import torch
from torch import nn


@torch.no_grad()
def randomize_batchnorm(model: nn.Module, seed: int = 0) -> nn.Module:
    """Give every BatchNorm non-trivial running stats and affine parameters, so that folding errors show.

    Layer-scale style parameters initialised near zero (e.g. 1e-5) are also randomised to O(1) so that
    residual branches are not silently switched off in equivalence tests.
    """
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            c = m.num_features
            m.running_mean.copy_(torch.rand(c, generator=g) * 0.4 - 0.2)
            m.running_var.copy_(torch.rand(c, generator=g) * 1.5 + 0.5)
            if m.weight is not None:
                m.weight.copy_(torch.rand(c, generator=g) * 1.0 + 0.5)
                m.bias.copy_(torch.rand(c, generator=g) * 0.4 - 0.2)
    for name, p in model.named_parameters():
        if name.endswith(("gamma", "layer_scale", "layer_scale.weight")) and p.abs().max() < 1e-3:
            p.copy_(torch.rand(p.shape, generator=g) * 0.5 + 0.5)
    return model


def rel_max_error(ref: torch.Tensor, out: torch.Tensor) -> float:
    """max|ref - out| / max|ref| (0 if both are zero)."""
    denom = ref.abs().max().item()
    err = (ref - out).abs().max().item()
    return err / denom if denom > 0 else err
