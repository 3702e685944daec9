"""Inverted residual / depthwise-separable block (MobileNetV2, Sandler et al. 2018) with optional SE
(MobileNetV3, Howard et al. 2019), shared by MobileNetV2/V3, EfficientNet-Lite and MoGA.

Block: [1×1 expand → BN → act] → k×k depthwise (stride s) → BN → act → [SE] → 1×1 project → BN [→ act]
→ [+ input]. Our keys: ``expand.conv.weight``, ``expand.bn.*``, ``dw.conv.weight``, ``dw.bn.*``,
``se.reduce.*``, ``se.expand.*``, ``project.conv.weight``, ``project.bn.*``.

Also the key-mapping helpers that describe these blocks in the reference code bases (timm, torchvision,
lukemelas ``efficientnet_pytorch``): explicit per-module name tables, in both directions.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

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


# --------------------------------------------------------------------------- reference key layouts

# A table row: (our module path, their module path, transform). Parameter leaf names (weight, bias,
# running_mean, …) are the same on both sides. transform "conv1x1": theirs is a 1×1 conv weight
# (O, I, 1, 1) where ours is a Linear (O, I).
Row = tuple[str, str, str]
StateDict = dict[str, torch.Tensor]


def cna_rows(ours: str, conv: str, bn: str) -> list[Row]:
    """A ConvNormAct (``ours.conv`` / ``ours.bn``) against their conv and BN module paths."""
    return [(f"{ours}.conv", conv, ""), (f"{ours}.bn", bn, "")]


def block_rows(style: str, ours: str, theirs: str, *, has_expand: bool, has_se: bool) -> list[Row]:
    """Rows for one InvertedResidual at ``ours`` against a reference block at ``theirs``.

    Styles: "timm" (DepthwiseSeparableConv / InvertedResidual), "torchvision_v2" (MobileNetV2
    ``conv.N``), "torchvision_v3" (MobileNetV3 ``block.N``), "lukemelas" (efficientnet_pytorch MBConv).
    """
    t, rows = theirs, []
    if style == "timm":
        if has_expand:
            rows += cna_rows(f"{ours}.expand", f"{t}.conv_pw", f"{t}.bn1")
            rows += cna_rows(f"{ours}.dw", f"{t}.conv_dw", f"{t}.bn2")
            proj = cna_rows(f"{ours}.project", f"{t}.conv_pwl", f"{t}.bn3")
        else:
            rows += cna_rows(f"{ours}.dw", f"{t}.conv_dw", f"{t}.bn1")
            proj = cna_rows(f"{ours}.project", f"{t}.conv_pw", f"{t}.bn2")
        se = (f"{t}.se.conv_reduce", f"{t}.se.conv_expand")
    elif style == "torchvision_v2":
        if has_se:
            raise UsageError("torchvision MobileNetV2 blocks have no SE")
        j = 0
        if has_expand:
            rows += cna_rows(f"{ours}.expand", f"{t}.conv.0.0", f"{t}.conv.0.1")
            j = 1
        rows += cna_rows(f"{ours}.dw", f"{t}.conv.{j}.0", f"{t}.conv.{j}.1")
        proj = cna_rows(f"{ours}.project", f"{t}.conv.{j + 1}", f"{t}.conv.{j + 2}")
        se = ("", "")
    elif style == "torchvision_v3":
        j = 0
        if has_expand:
            rows += cna_rows(f"{ours}.expand", f"{t}.block.0.0", f"{t}.block.0.1")
            j = 1
        rows += cna_rows(f"{ours}.dw", f"{t}.block.{j}.0", f"{t}.block.{j}.1")
        se = (f"{t}.block.{j + 1}.fc1", f"{t}.block.{j + 1}.fc2")
        p = j + 1 + int(has_se)
        proj = cna_rows(f"{ours}.project", f"{t}.block.{p}.0", f"{t}.block.{p}.1")
    elif style == "lukemelas":
        if has_expand:
            rows += cna_rows(f"{ours}.expand", f"{t}._expand_conv", f"{t}._bn0")
        rows += cna_rows(f"{ours}.dw", f"{t}._depthwise_conv", f"{t}._bn1")
        se = (f"{t}._se_reduce", f"{t}._se_expand")
        proj = cna_rows(f"{ours}.project", f"{t}._project_conv", f"{t}._bn2")
    else:
        raise UsageError(f"unknown block key style '{style}'")
    if has_se:
        rows += [(f"{ours}.se.reduce", se[0], ""), (f"{ours}.se.expand", se[1], "")]
    return rows + proj


def _apply(sd: StateDict, table: dict[str, tuple[str, str]], to_ours: bool) -> StateDict | None:
    out: StateDict = {}
    for key, v in sd.items():
        mod, _, leaf = key.rpartition(".")
        if mod not in table:
            return None
        new_mod, transform = table[mod]
        if transform == "conv1x1" and leaf == "weight":
            v = v.flatten(1) if to_ours and v.dim() == 4 else v
            v = v[:, :, None, None] if not to_ours and v.dim() == 2 else v
        out[f"{new_mod}.{leaf}"] = v
    return out


def convert_keys(sd: StateDict, tables: Sequence[list[Row]], to_ours: bool) -> StateDict:
    """Rename ``sd`` with the best-fitting table: every key must map; among those, the table whose
    modules are covered most completely wins. Raises KeyError when no table maps every key."""
    best: tuple[int, StateDict] | None = None
    for rows in tables:
        table = {(r[1] if to_ours else r[0]): (r[0] if to_ours else r[1], r[2]) for r in rows}
        out = _apply(sd, table, to_ours)
        if out is None:
            continue
        used = {k.rpartition(".")[0] for k in sd}
        left = len(set(table) - used)
        if best is None or left < best[0]:
            best = (left, out)
    if best is None:
        direction = "reference → ours" if to_ours else "ours → reference"
        raise KeyError(f"no variant's key table maps every key ({direction})")
    return best[1]


def table_layout(tables_fn: Callable[[], Sequence[list[Row]]]):
    """(to_ours, from_ours) functions for a KeyLayout built on per-variant tables."""
    return (lambda sd: convert_keys(sd, tables_fn(), True), lambda sd: convert_keys(sd, tables_fn(), False))
