"""TensorFlow "SAME" padding for convolutions (needed by weights ported from TF, e.g. EfficientNet-Lite).

TF pads ``total = max((ceil(n/s) - 1)·s + (k-1)·d + 1 - n, 0)`` per spatial dim, with ``total // 2`` before
and the rest after (asymmetric when ``total`` is odd). With stride 1 and an odd kernel this is the symmetric
k//2 padding, so those convs use ordinary padding. Strided convs get an explicit ``F.pad`` computed from the
input size in front of a padding-0 conv: the exported graph is a plain Pad + Conv, and BN folding is
unchanged (``TfSameConvNormAct`` keeps the ``ConvNormAct`` keys ``conv.weight``, ``bn.*``).
"""

from __future__ import annotations

import math

import torch
import torch.fx
import torch.nn.functional as F
from torch import nn

from .conv import ConvNormAct


def tf_same_pads(size: int, kernel: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """(before, after) padding of one spatial dimension of length ``size``."""
    total = max((math.ceil(size / stride) - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


def pad_same(x: torch.Tensor, kernel: int, stride: int, dilation: int = 1) -> torch.Tensor:
    h, w = x.shape[-2:]
    top, bottom = tf_same_pads(int(h), kernel, stride, dilation)
    left, right = tf_same_pads(int(w), kernel, stride, dilation)
    if top == bottom == left == right == 0:
        return x
    return F.pad(x, (left, right, top, bottom))


# a leaf for torch.fx symbolic tracing (coremltools' activation quantizer traces with fx, where the input size
# is a Proxy that int() cannot read); jit.trace and torch.export still see the plain Pad
torch.fx.wrap("pad_same")


class TfSameConvNormAct(ConvNormAct):
    """``ConvNormAct`` with TF-SAME padding. Same keys and the same ``reparameterize()`` (BN fold)."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int = 1, stride: int = 1, groups: int = 1,
                 act: nn.Module | None = None, bn_eps: float = 1e-3, dilation: int = 1):
        dynamic = stride > 1 or kernel_size % 2 == 0
        pad = 0 if dynamic else (kernel_size // 2) * dilation
        super().__init__(in_ch, out_ch, kernel_size, stride, groups, act, padding=pad, bn_eps=bn_eps,
                         dilation=dilation)
        self.dynamic = dynamic
        self.same = (kernel_size, stride, dilation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.dynamic:
            x = pad_same(x, *self.same)
        return self.act(self.bn(self.conv(x)))
