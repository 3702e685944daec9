"""fold_batchnorm: fold every BatchNorm into the conv/linear before it; a BN with no such conv becomes a
ChannelAffine (x·scale + shift). Postcondition: no BatchNorm module remains."""

from __future__ import annotations

import torch
from torch import nn

from ..errors import InvariantError
from ..layers.conv import ChannelAffine, ConvNormAct, fuse_conv_bn

_BN = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


def _fold_sequential(seq: nn.Sequential) -> None:
    """Fold [Conv2d|Linear, BatchNorm] adjacent pairs inside an nn.Sequential."""
    names = list(seq._modules)
    for a, b in zip(names, names[1:], strict=False):
        first, second = seq._modules[a], seq._modules[b]
        if isinstance(second, _BN) and isinstance(first, (nn.Conv2d, nn.Linear)):
            w, bias = fuse_conv_bn(first.weight, first.bias, second)
            with torch.no_grad():
                if first.bias is None:
                    first.bias = nn.Parameter(torch.zeros_like(bias))
                first.weight.copy_(w)
                first.bias.copy_(bias)
            seq._modules[b] = nn.Identity()


def bn_modules(model: nn.Module) -> list[str]:
    return [n for n, m in model.named_modules() if isinstance(m, _BN)]


@torch.no_grad()
def fold_batchnorm(model: nn.Module) -> nn.Module:
    """In place; returns ``model``. Idempotent."""
    for m in list(model.modules()):
        if isinstance(m, ConvNormAct):
            m.reparameterize()
        elif isinstance(m, nn.Sequential):
            _fold_sequential(m)
    # what is left has no conv in front of it: replace by a per-channel affine
    for parent in list(model.modules()):
        for child_name, child in list(parent._modules.items()):
            if isinstance(child, _BN):
                parent._modules[child_name] = ChannelAffine.from_bn(child)
    left = bn_modules(model)
    if left:
        raise InvariantError(f"fold_batchnorm: BatchNorm left after folding: {left[:5]}")
    return model
