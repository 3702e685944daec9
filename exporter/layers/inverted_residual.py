"""Inverted residual / depthwise-separable block (MobileNetV2, Sandler et al. 2018) with optional SE
(MobileNetV3, Howard et al. 2019), shared by MobileNetV2/V3, EfficientNet-Lite and MoGA.

Block: [1×1 expand → BN → act] → k×k depthwise (stride s) → BN → act → [SE] → 1×1 project → BN [→ act]
→ [+ input]. Our keys: ``expand.conv.weight``, ``expand.bn.*``, ``dw.conv.weight``, ``dw.bn.*``,
``se.reduce.*``, ``se.expand.*``, ``project.conv.weight``, ``project.bn.*`` (the reference code bases' names for
them: exporter/models/_ref_keys.py).
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import UsageError
from .conv import ConvNormAct
from .se import ActSpec, SqueezeExcite, make_act
from .tf_padding import TfSameConvNormAct

PADDINGS = ("symmetric", "tf_same")


def conv_norm_act(in_ch: int, out_ch: int, kernel: int = 1, stride: int = 1, groups: int = 1,
                  act: ActSpec = None, *, padding: str = "symmetric", bn_eps: float = 1e-5) -> ConvNormAct:
    """A ConvNormAct with PyTorch-style symmetric (k//2) padding or TF-SAME padding."""
    if padding not in PADDINGS:
        raise UsageError(f"padding must be one of {PADDINGS}, got {padding!r}")
    if padding == "tf_same":
        return TfSameConvNormAct(in_ch, out_ch, kernel, stride, groups, make_act(act), bn_eps=bn_eps)
    return ConvNormAct(in_ch, out_ch, kernel, stride, groups, make_act(act), bn_eps=bn_eps)


class InvertedResidual(nn.Module):
    """General inverted residual block.

    Args:
        in_ch, out_ch: block input / output channels.
        hidden: expanded width (or give ``expand_ratio``: hidden = round(in_ch · ratio)).
        kernel, stride: of the depthwise conv.
        act: activation after expand and depthwise (name or factory); ``project_act`` after the projection
            (None = linear bottleneck).
        expand: force the 1×1 expansion on/off; default: present iff hidden != in_ch.
        se_channels / se_ratio: SE bottleneck width, explicit or make_divisible(hidden · ratio, 8); no SE if
            both are None. ``se_act`` (default: "relu"; pass the block act for MoGA) and ``gate``.
        padding: "symmetric" (k//2) or "tf_same" (TF 'SAME', for TF-ported weights). ``bn_eps``.
        skip: allow the residual add (it is used iff skip and stride == 1 and in_ch == out_ch).
    """

    def __init__(self, in_ch: int, out_ch: int, hidden: int | None = None, kernel: int = 3, stride: int = 1,
                 act: ActSpec = "relu6", *, expand_ratio: float | None = None, expand: bool | None = None,
                 se_channels: int | None = None, se_ratio: float | None = None, se_act: ActSpec = "relu",
                 gate: ActSpec = "sigmoid", project_act: ActSpec = None, padding: str = "symmetric",
                 bn_eps: float = 1e-5, skip: bool = True):
        super().__init__()
        if hidden is None:
            if expand_ratio is None:
                raise UsageError("InvertedResidual needs `hidden` or `expand_ratio`")
            hidden = int(round(in_ch * expand_ratio))
        expand = hidden != in_ch if expand is None else expand
        if not expand and hidden != in_ch:
            raise UsageError(f"without expansion hidden must equal in_ch ({hidden} != {in_ch})")
        kw = {"padding": padding, "bn_eps": bn_eps}
        self.in_ch, self.out_ch, self.hidden, self.stride = in_ch, out_ch, hidden, stride
        self.expand = conv_norm_act(in_ch, hidden, 1, 1, 1, act, **kw) if expand else None
        self.dw = conv_norm_act(hidden, hidden, kernel, stride, hidden, act, **kw)
        if se_channels is not None or se_ratio is not None:
            self.se = SqueezeExcite(hidden, se_channels, ratio=se_ratio, act=se_act, gate=gate)
        else:
            self.se = None
        self.project = conv_norm_act(hidden, out_ch, 1, 1, 1, project_act, **kw)
        self.use_residual = skip and stride == 1 and in_ch == out_ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x if self.expand is None else self.expand(x)
        y = self.dw(y)
        if self.se is not None:
            y = self.se(y)
        y = self.project(y)
        return x + y if self.use_residual else y
