"""Channel shuffle (Zhang et al., ShuffleNet, CVPR 2018): interleave the channels of ``groups`` groups; and the
zero-padded max pool of a post-ReLU stem (``NonNegMaxPool``).

A reshape → transpose → reshape, the op pattern the converters must keep (no gather), shared by ShuffleNet V1/V2.
"""

from __future__ import annotations

import torch
import torch.fx
from torch import nn


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    b, c, h, w = x.shape
    return x.reshape(b, groups, c // groups, h, w).transpose(1, 2).reshape(b, c, h, w)


# a leaf for torch.fx symbolic tracing (coremltools' activation quantizer traces with fx, where x.shape is a Proxy
# that cannot be unpacked); jit.trace and torch.export still see the plain reshape/transpose
torch.fx.wrap("channel_shuffle")


class ChannelShuffle(nn.Module):
    def __init__(self, groups: int):
        super().__init__()
        self.groups = groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return channel_shuffle(x, self.groups)


class NonNegMaxPool(nn.Sequential):
    """3×3/2 max pool (padding 1) of a non-negative input (the ReLU output of a stem), padding with zeros instead of
    −inf: the same values (every window holds at least one input element, all ≥ 0), and the exported graph has a
    plain PAD instead of −inf padding, whose infinite range a full-integer int8 quantizer cannot represent
    (tflite-w8a8 failed with "supplied range of [-inf, …]"). ResNet and ShuffleNet V1/V2 use it."""

    def __init__(self):
        super().__init__(nn.ZeroPad2d(1), nn.MaxPool2d(3, 2))
