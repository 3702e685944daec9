"""Conv + BatchNorm + activation, BN folding arithmetic, per-channel affine, make_divisible."""

from __future__ import annotations

import torch
from torch import nn

from .reparam import Reparameterizable


def make_divisible(v: float, divisor: int = 8, min_value: int | None = None, round_limit: float = 0.9) -> int:
    """TF/timm/cvnets rounding: nearest multiple of ``divisor`` (ties up), never below ``min_value``,
    and never more than 10% below ``v``."""
    min_value = min_value or divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < round_limit * v:
        new_v += divisor
    return new_v


@torch.no_grad()
def bn_scale_shift(bn: nn.BatchNorm2d | nn.BatchNorm1d) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel (scale, shift) such that bn(x) == x * scale + shift in eval mode."""
    std = torch.sqrt(bn.running_var + bn.eps)
    gamma = bn.weight if bn.weight is not None else torch.ones_like(std)
    beta = bn.bias if bn.bias is not None else torch.zeros_like(std)
    scale = gamma / std
    return scale, beta - bn.running_mean * scale


@torch.no_grad()
def fuse_conv_bn(weight: torch.Tensor, bias: torch.Tensor | None, bn: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """Fold ``bn`` (applied after a conv/linear with ``weight``/``bias``) into a new (weight, bias)."""
    scale, shift = bn_scale_shift(bn)
    w = weight * scale.reshape(-1, *([1] * (weight.dim() - 1)))
    b = shift if bias is None else bias * scale + shift
    return w, b


class ChannelAffine(nn.Module):
    """y = x * scale + shift per channel (dim 1). The deploy form of a BatchNorm with no conv to fold into."""

    def __init__(self, scale: torch.Tensor, shift: torch.Tensor, spatial_dims: int | None = 2):
        super().__init__()
        self.scale = nn.Parameter(scale.detach().clone())
        self.shift = nn.Parameter(shift.detach().clone())
        # known rank → a constant view: torch.fx would otherwise trace x.dim() into int nodes, which an
        # activation quantizer then tries to observe (coreml-w8a8 of MNv4-Hybrid); None: read it from x
        self.spatial_dims = spatial_dims

    @classmethod
    def from_bn(cls, bn: nn.Module) -> ChannelAffine:
        return cls(*bn_scale_shift(bn), spatial_dims={nn.BatchNorm2d: 2, nn.BatchNorm3d: 3}.get(type(bn)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rest = self.spatial_dims if self.spatial_dims is not None else x.dim() - 2
        shape = (1, -1) + (1,) * rest
        return x * self.scale.reshape(shape) + self.shift.reshape(shape)


class ConvNormAct(Reparameterizable):
    """conv(k, s, groups, no bias) → BN → act. ``reparameterize()`` folds BN into the conv (adds a bias).

    Keys: ``conv.weight``, ``bn.*`` (train form) / ``conv.weight``, ``conv.bias`` (deploy form).
    ``padding=None`` means k//2 (symmetric); pass an int or "same" if a family needs otherwise.
    """

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int = 1, stride: int = 1, groups: int = 1,
                 act: nn.Module | None = None, padding=None, bn_eps: float = 1e-5, norm: bool = True,
                 dilation: int = 1):
        super().__init__()
        pad = (kernel_size // 2) * dilation if padding is None else padding
        self.conv = nn.Conv2d(in_ch, out_ch, kernel_size, stride, pad, dilation=dilation, groups=groups,
                              bias=not norm)
        self.bn = nn.BatchNorm2d(out_ch, eps=bn_eps) if norm else nn.Identity()
        self.act = act if act is not None else nn.Identity()
        if not norm:
            self._mark_deployed()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))

    @torch.no_grad()
    def reparameterize(self) -> None:
        if self.deployed:
            return
        w, b = fuse_conv_bn(self.conv.weight, self.conv.bias, self.bn)
        c = self.conv
        fused = nn.Conv2d(c.in_channels, c.out_channels, c.kernel_size, c.stride, c.padding,
                          dilation=c.dilation, groups=c.groups, bias=True).to(c.weight)  # keep dtype/device
        fused.weight.copy_(w)
        fused.bias.copy_(b)
        self.conv = fused
        self.bn = nn.Identity()
        self._mark_deployed()
