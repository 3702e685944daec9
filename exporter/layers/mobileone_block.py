"""The multi-branch re-parameterizable conv block shared by MobileOne and RepVGG, and the plain network they
both assemble from it.

Train form (``RepBranchBlock``), for one conv position k×k / stride s / groups g, C_in → C_out::

    y = Σ_j BN_j(conv_kxk_j(x))          j = 0 … num_branches-1   (MobileOne k; RepVGG 1)
      + BN(conv_1x1(x))                  optional "scale" branch  (MobileOne: if k > 1; RepVGG: always)
      + BN(x)                            optional skip, only possible when C_out == C_in and s == 1
    out = act(se(y))                     SE (MobileOne-S4) acts before the activation

Deploy form: ``reparam_conv`` — one k×k conv with bias — followed by the same SE and activation. No adds.
The merge: BN-fold every branch, zero-pad the 1×1 kernel to k×k, turn the skip BN into a
groups-aware identity kernel, sum kernels and biases.

Our module names (both families): ``conv_kxk.{j}.conv/.bn``, ``conv_scale.conv/.bn``, ``identity`` (BN),
``se.reduce/.expand``, ``reparam_conv``; networks: ``stem``, ``stages.{i}.{m}``, ``head.fc`` (the reference
layouts' names: exporter/models/mobileone.py, repvgg.py).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .conv import ChannelAffine, ConvNormAct, bn_scale_shift, fuse_conv_bn
from .reparam import Reparameterizable


class SqueezeExcite(nn.Module):
    """Global average pool → 1×1 conv (bias) → ReLU → 1×1 conv (bias) → sigmoid → multiply."""

    def __init__(self, channels: int, reduced: int):
        super().__init__()
        self.reduce = nn.Conv2d(channels, reduced, 1, bias=True)
        self.expand = nn.Conv2d(reduced, channels, 1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean((2, 3), keepdim=True)
        return x * torch.sigmoid(self.expand(F.relu(self.reduce(s))))


def identity_kernel(channels: int, groups: int, k: int, like: torch.Tensor | None = None) -> torch.Tensor:
    """(C, C/g, k, k) kernel computing the identity with a grouped k×k conv: K[c, c mod C/g, k//2, k//2] = 1."""
    per_group = channels // groups
    kernel = torch.zeros(channels, per_group, k, k)
    idx = torch.arange(channels)
    kernel[idx, idx % per_group, k // 2, k // 2] = 1.0
    return kernel if like is None else kernel.to(like)


class RepBranchBlock(Reparameterizable):
    """k conv branches + optional 1×1 scale branch + optional BN skip, then SE, then activation."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int, stride: int = 1, groups: int = 1, *,
                 num_branches: int = 1, scale_branch: bool = True, skip: bool = True,
                 se_reduced: int = 0, act: nn.Module | None = None):
        super().__init__()
        if in_ch % groups or out_ch % groups:
            raise ValueError(f"channels {in_ch}→{out_ch} not divisible by groups={groups}")
        if num_branches < 1:
            raise ValueError(f"num_branches must be ≥ 1, got {num_branches}")
        self.in_ch, self.out_ch, self.kernel_size = in_ch, out_ch, kernel_size
        self.stride, self.groups = stride, groups
        self.conv_kxk = nn.ModuleList(
            ConvNormAct(in_ch, out_ch, kernel_size, stride, groups) for _ in range(num_branches))
        self.conv_scale = (ConvNormAct(in_ch, out_ch, 1, stride, groups, padding=0)
                           if scale_branch and kernel_size > 1 else None)
        self.identity = nn.BatchNorm2d(in_ch) if skip and in_ch == out_ch and stride == 1 else None
        self.reparam_conv: nn.Conv2d | None = None
        self.se = SqueezeExcite(out_ch, se_reduced) if se_reduced else nn.Identity()
        self.act = act if act is not None else nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.reparam_conv is not None:
            return self.act(self.se(self.reparam_conv(x)))
        y = self.conv_kxk[0](x)
        for branch in self.conv_kxk[1:]:
            y = y + branch(x)
        if self.conv_scale is not None:
            y = y + self.conv_scale(x)
        if self.identity is not None:
            y = y + self.identity(x)
        return self.act(self.se(y))

    @torch.no_grad()
    def fused_kernel_bias(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The (weight, bias) of the single k×k conv equivalent to all branches (eval-mode BN)."""
        k = self.kernel_size
        weight, bias = 0, 0
        for branch in self.conv_kxk:
            w, b = _branch_weight_bias(branch)
            weight, bias = weight + w, bias + b
        if self.conv_scale is not None:
            w, b = _branch_weight_bias(self.conv_scale)
            weight, bias = weight + F.pad(w, [k // 2] * 4), bias + b
        if self.identity is not None:
            ident = identity_kernel(self.in_ch, self.groups, k, like=weight)
            scale, shift = _affine_of(self.identity)
            weight = weight + ident * scale.reshape(-1, 1, 1, 1)
            bias = bias + shift
        return weight, bias

    @torch.no_grad()
    def reparameterize(self) -> None:
        if self.deployed:
            return
        weight, bias = self.fused_kernel_bias()
        conv = nn.Conv2d(self.in_ch, self.out_ch, self.kernel_size, self.stride, self.kernel_size // 2,
                         groups=self.groups, bias=True).to(weight)
        conv.weight.copy_(weight)
        conv.bias.copy_(bias)
        self.reparam_conv = conv
        self.conv_kxk = None
        self.conv_scale = None
        self.identity = None
        self._mark_deployed()


def _branch_weight_bias(branch: ConvNormAct) -> tuple[torch.Tensor, torch.Tensor]:
    conv = branch.conv
    if isinstance(branch.bn, nn.modules.batchnorm._BatchNorm):
        return fuse_conv_bn(conv.weight, conv.bias, branch.bn)
    bias = conv.bias if conv.bias is not None else torch.zeros(conv.out_channels).to(conv.weight)
    return conv.weight, bias  # already folded by fold_batchnorm


def _affine_of(mod: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    if isinstance(mod, ChannelAffine):  # fold_batchnorm ran before the block was merged
        return mod.scale, mod.shift
    return bn_scale_shift(mod)


class ClassifierHead(nn.Module):
    """Global average pool → Linear (keys ``fc.weight``, ``fc.bias``)."""

    def __init__(self, in_features: int, num_classes: int):
        super().__init__()
        self.fc = nn.Linear(in_features, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.mean((2, 3)))


class PlainRepNet(nn.Module):
    """stem → stages (each an ``nn.Sequential`` of blocks) → pool + Linear. Train form of MobileOne/RepVGG."""

    def __init__(self, stem: nn.Module, stages: Sequence[Sequence[nn.Module]], head_in: int, num_classes: int):
        super().__init__()
        self.stem = stem
        self.stages = nn.Sequential(*(nn.Sequential(*blocks) for blocks in stages))
        self.head = ClassifierHead(head_in, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.stages(self.stem(x)))
