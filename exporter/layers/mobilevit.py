"""MobileViT(v3) building blocks: MV2 inverted residual, 2×2 patch (un)folding, MHSA transformer layer,
linear self-attention layer, and the two MobileViTv3 blocks (v1-style with MHSA, v2-style with linear
attention).

Module names mirror the cvnets checkpoints (``local_rep``, ``global_rep``, ``pre_norm_mha.1.qkv_proj`` …) so
that the key mapping only has to translate ``conv``/``bn`` (ours) ↔ ``block.conv``/``block.norm`` (cvnets).
Sequential indices that hold a dropout in cvnets hold an ``nn.Identity`` here to keep those indices.

Patch (un)folding uses reshape/permute only, every intermediate of rank ≤ 4 (no ``F.unfold``/``F.fold``,
no rank-5/6 transposes), so Core ML / LiteRT / ONNX see plain Reshape + Transpose.
"""

from __future__ import annotations

import math
from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

from .conv import ConvNormAct, make_divisible

PATCH = 2  # MobileViTv3 uses 2×2 patches everywhere


class PlainConv(nn.Module):
    """conv (optionally with bias) → optional activation, no norm. Key ``conv.weight`` (+ ``conv.bias``)."""

    def __init__(self, in_ch: int, out_ch: int, bias: bool = True, act: nn.Module | None = None):
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, 1, bias=bias)
        self.act = act if act is not None else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv(x))


class GlobalMeanPool(nn.Module):
    """[B, C, H, W] → [B, C] spatial mean."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3))


class MV2Block(nn.Module):
    """cvnets ``InvertedResidual``: [1×1 expand + BN + SiLU] → DW 3×3 (stride) + BN + SiLU → 1×1 + BN."""

    def __init__(self, in_ch: int, out_ch: int, stride: int, expansion: float):
        super().__init__()
        hidden = make_divisible(int(round(in_ch * expansion)), 8)
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        if expansion != 1:
            layers["exp_1x1"] = ConvNormAct(in_ch, hidden, 1, act=nn.SiLU())
        layers["conv_3x3"] = ConvNormAct(hidden, hidden, 3, stride=stride, groups=hidden, act=nn.SiLU())
        layers["red_1x1"] = ConvNormAct(hidden, out_ch, 1)
        self.block = nn.Sequential(layers)
        self.use_res = stride == 1 and in_ch == out_ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.block(x)
        return x + y if self.use_res else y


# ---------------------------------------------------------------------------------------------------------
# 2×2 patch (un)folding. Patch position p = ph·2 + pw, patch index n = ih·nw + iw (the F.unfold order).

def unfold_patches(x: torch.Tensor) -> torch.Tensor:
    """[B, d, H, W] (H, W even) → [B, d, P=4, N=(H/2)(W/2)]; rank ≤ 4 throughout."""
    b, d, h, w = x.shape
    nh, nw = h // PATCH, w // PATCH
    t = x.reshape(b * d * nh, PATCH, nw, PATCH).permute(0, 1, 3, 2)  # [bdn_h, ph, pw, iw]
    t = t.reshape(b * d, nh, PATCH * PATCH, nw).permute(0, 2, 1, 3)  # [bd, p, ih, iw]
    return t.reshape(b, d, PATCH * PATCH, nh * nw)


def fold_patches(p: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Inverse of :func:`unfold_patches`: [B, d, 4, N] → [B, d, H, W]."""
    b, d = p.shape[0], p.shape[1]
    nh, nw = h // PATCH, w // PATCH
    t = p.reshape(b * d, PATCH * PATCH, nh, nw).permute(0, 2, 1, 3)  # [bd, ih, p, iw]
    t = t.reshape(b * d * nh, PATCH, PATCH, nw).permute(0, 1, 3, 2)  # [bdn_h, ph, iw, pw]
    return t.reshape(b, d, h, w)


def map_to_tokens(x: torch.Tensor) -> torch.Tensor:
    """[B, d, H, W] → [B·P, N, d] token sequences (one sequence per pixel position inside the patch)."""
    b, d = x.shape[0], x.shape[1]
    p = unfold_patches(x).permute(0, 2, 3, 1)  # [B, P, N, d]
    return p.reshape(b * PATCH * PATCH, -1, d)


def tokens_to_map(t: torch.Tensor, batch: int, h: int, w: int) -> torch.Tensor:
    """Inverse of :func:`map_to_tokens`: [B·P, N, d] → [B, d, H, W]."""
    d = t.shape[-1]
    p = t.reshape(batch, PATCH * PATCH, -1, d).permute(0, 3, 1, 2)  # [B, d, P, N]
    return fold_patches(p, h, w)


def _even_size(h: int, w: int) -> tuple[int, int]:
    return math.ceil(h / PATCH) * PATCH, math.ceil(w / PATCH) * PATCH


# ---------------------------------------------------------------------------------------------------------
# v1-style: MHSA transformer

class MultiHeadSelfAttention(nn.Module):
    """Fused-qkv MHSA on [B, N, d] tokens; scale head_dim^-0.5 applied to q. Keys ``qkv_proj``, ``out_proj``."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        if dim % heads:
            raise ValueError(f"attention dim {dim} is not divisible by {heads} heads")
        self.heads, self.head_dim = heads, dim // heads
        self.scale = self.head_dim ** -0.5
        self.qkv_proj = nn.Linear(dim, 3 * dim)
        self.out_proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        qkv = self.qkv_proj(x).reshape(b, n, 3 * self.heads, self.head_dim).permute(0, 2, 1, 3)
        q, k, v = qkv.split(self.heads, dim=1)  # each [B, h, N, hd]
        attn = torch.softmax(torch.matmul(q * self.scale, k.transpose(-1, -2)), dim=-1)
        out = torch.matmul(attn, v).permute(0, 2, 1, 3).reshape(b, n, d)
        return self.out_proj(out)


class TransformerLayer(nn.Module):
    """Pre-LN encoder layer: x + MHSA(LN(x)); x + FFN(LN(x)), FFN = Linear → SiLU → Linear."""

    def __init__(self, dim: int, ffn_dim: int, heads: int):
        super().__init__()
        self.pre_norm_mha = nn.Sequential(nn.LayerNorm(dim), MultiHeadSelfAttention(dim, heads))
        self.pre_norm_ffn = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, ffn_dim), nn.SiLU(), nn.Identity(),
                                          nn.Linear(ffn_dim, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.pre_norm_mha(x)
        return x + self.pre_norm_ffn(x)


class MobileViTv3BlockV1(nn.Module):
    """MobileViTv3 block, v1 style (XXS/XS/S): DW-3×3 local rep, MHSA global rep over 2×2 patches,
    fusion of [local, projected global] by a 1×1 conv, plus the input residual."""

    def __init__(self, channels: int, dim: int, ffn_dim: int, layers: int, heads: int = 4):
        super().__init__()
        self.local_rep = nn.Sequential(OrderedDict(
            conv_3x3=ConvNormAct(channels, channels, 3, groups=channels, act=nn.SiLU()),
            conv_1x1=PlainConv(channels, dim, bias=False)))
        self.global_rep = nn.Sequential(*[TransformerLayer(dim, ffn_dim, heads) for _ in range(layers)],
                                        nn.LayerNorm(dim))
        self.conv_proj = ConvNormAct(dim, channels, 1, act=nn.SiLU())
        self.fusion = ConvNormAct(dim + channels, channels, 1, act=nn.SiLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        local = self.local_rep(x)
        b, _, h, w = local.shape
        eh, ew = _even_size(h, w)
        fm = local if (eh, ew) == (h, w) else F.interpolate(local, size=(eh, ew), mode="bilinear")
        fm = tokens_to_map(self.global_rep(map_to_tokens(fm)), b, eh, ew)
        if (eh, ew) != (h, w):
            fm = F.interpolate(fm, size=(h, w), mode="bilinear")
        fm = self.conv_proj(fm)
        return self.fusion(torch.cat((local, fm), dim=1)) + x


# ---------------------------------------------------------------------------------------------------------
# v2-style: separable linear self-attention on [B, d, P, N] "images"

class LinearSelfAttention(nn.Module):
    """MobileViTv2 linear attention: 1×1 conv d → 1+2d (query, key, value); softmax(query) over the patch
    axis N weights the keys into one context vector per pixel position; out = ReLU(value)·context → 1×1."""

    def __init__(self, dim: int):
        super().__init__()
        self.dim = dim
        self.qkv_proj = PlainConv(dim, 1 + 2 * dim)
        self.out_proj = PlainConv(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.qkv_proj(x).split((1, self.dim, self.dim), dim=1)
        scores = torch.softmax(q, dim=-1)  # [B, 1, P, N]
        context = (k * scores).sum(dim=-1, keepdim=True)  # [B, d, P, 1]
        return self.out_proj(F.relu(v) * context)


class GroupNorm1(nn.GroupNorm):
    """GroupNorm with one group, computed with rank-4 ops only.

    ``nn.GroupNorm`` lowers (Core ML, TFLite) through a rank-5 reshape (B, G, C/G, H, W), which the Neural Engine
    lint flags on every use (168 ops in MobileViTv3-0.5). Same parameters and keys (weight, bias) as nn.GroupNorm.
    """

    def __init__(self, num_channels: int, eps: float = 1e-5):
        super().__init__(1, num_channels, eps=eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        centered = x - mean
        var = (centered * centered).mean(dim=(1, 2, 3), keepdim=True)
        y = centered * torch.rsqrt(var + self.eps)
        return y * self.weight.reshape(1, -1, 1, 1) + self.bias.reshape(1, -1, 1, 1)


class LinearAttnFFN(nn.Module):
    """x + LSA(GN1(x)); x + FFN(GN1(x)), FFN = 1×1 conv → SiLU → 1×1 conv; GN1 = GroupNorm(1 group)."""

    def __init__(self, dim: int, ffn_dim: int):
        super().__init__()
        self.pre_norm_attn = nn.Sequential(GroupNorm1(dim), LinearSelfAttention(dim))
        self.pre_norm_ffn = nn.Sequential(GroupNorm1(dim), PlainConv(dim, ffn_dim, act=nn.SiLU()),
                                          nn.Identity(), PlainConv(ffn_dim, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.pre_norm_attn(x)
        return x + self.pre_norm_ffn(x)


class MobileViTv3BlockV2(nn.Module):
    """MobileViTv3 block, v2 style (0.5/0.75/1.0): DW-3×3 local rep, linear-attention global rep,
    conv_proj over [global, local] (1×1 + BN, no activation), plus the input residual.

    As in the reference, an odd-sized input is first resized (bilinear, align_corners=True) to even size and
    the block's output keeps that size."""

    def __init__(self, channels: int, dim: int, layers: int, ffn_multiplier: float = 2.0):
        super().__init__()
        ffn_dim = int(ffn_multiplier * dim // 16 * 16)
        self.local_rep = nn.Sequential(ConvNormAct(channels, channels, 3, groups=channels, act=nn.SiLU()),
                                       PlainConv(channels, dim, bias=False))
        self.global_rep = nn.Sequential(*[LinearAttnFFN(dim, ffn_dim) for _ in range(layers)],
                                        GroupNorm1(dim))
        self.conv_proj = ConvNormAct(2 * dim, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        eh, ew = _even_size(h, w)
        if (eh, ew) != (h, w):
            x = F.interpolate(x, size=(eh, ew), mode="bilinear", align_corners=True)
        local = self.local_rep(x)
        fm = fold_patches(self.global_rep(unfold_patches(local)), eh, ew)
        return self.conv_proj(torch.cat((fm, local), dim=1)) + x
