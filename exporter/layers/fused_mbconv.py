"""Fused-MBConv (Tan & Le, EfficientNetV2, ICML 2021, arXiv 2104.00298): the 1×1 expansion and the depthwise
k×k of an MBConv fused into one full k×k conv (stride s) → BN → act, then a 1×1 projection → BN, plus the input
when the shape is kept. With expansion 1 the fused conv maps straight to the output and there is no projection.

Keys: ``fused.conv.weight``, ``fused.bn.*``, ``project.conv.weight``, ``project.bn.*`` (ConvNormActs; the
reference code bases' names: exporter/models/efficientnet.py).
"""

from __future__ import annotations

import torch
from torch import nn

from .inverted_residual import conv_norm_act
from .se import ActSpec


class FusedMBConv(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, expand_ratio: int, kernel: int = 3, stride: int = 1,
                 act: ActSpec = "silu", *, padding: str = "symmetric", bn_eps: float = 1e-5):
        super().__init__()
        kw = {"padding": padding, "bn_eps": bn_eps}
        hidden = in_ch * expand_ratio
        self.in_ch, self.out_ch, self.stride = in_ch, out_ch, stride
        if expand_ratio == 1:
            self.fused = conv_norm_act(in_ch, out_ch, kernel, stride, 1, act, **kw)
            self.project = None
        else:
            self.fused = conv_norm_act(in_ch, hidden, kernel, stride, 1, act, **kw)
            self.project = conv_norm_act(hidden, out_ch, 1, 1, 1, None, **kw)
        self.use_residual = stride == 1 and in_ch == out_ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.fused(x)
        if self.project is not None:
            y = self.project(y)
        return x + y if self.use_residual else y
