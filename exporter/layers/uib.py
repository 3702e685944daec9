"""MobileNetV4 building blocks: Universal Inverted Bottleneck, Fused-IB, Mobile MQA and layer scale.

Written from the MobileNetV4 paper (Qin et al., arXiv 2404.10518) and the block definitions in
tensorflow/models ``official/vision/modeling/layers/nn_blocks.py`` (Apache-2.0) and timm
``_efficientnet_blocks.py`` / ``attention2d.py`` (Apache-2.0).

Deploy forms (``reparameterize()``):
* UIB: every conv+BN is folded and the layer scale γ is multiplied into the projection conv (exact).
* Mobile MQA: the input BatchNorm is folded into the query 1×1 conv (exact: no padding) and, when
  kv_stride = 1, into the key/value 1×1 convs too. With kv_stride = 2 the K/V path starts with a zero-padded
  depthwise 3×3, where folding an affine is not exact at the borders, so that path keeps the affine as a
  ``ChannelAffine``. The 1/sqrt(d) attention scale goes into the query conv, γ into the output conv.
All tensors stay rank ≤ 4; softmax runs over the last axis.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .conv import ChannelAffine, ConvNormAct, bn_scale_shift, make_divisible
from .reparam import Reparameterizable


class LayerScale(nn.Module):
    """y = x · γ per channel (NCHW). Parameter name ``gamma`` (timm's ``layer_scale.gamma``)."""

    def __init__(self, channels: int, init_value: float = 1e-5):
        super().__init__()
        self.gamma = nn.Parameter(torch.full((channels,), float(init_value)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma.reshape(1, -1, 1, 1)


@torch.no_grad()
def _scale_conv_out(conv: nn.Conv2d, scale: torch.Tensor) -> None:
    """Multiply a conv's output channels by ``scale`` in place (weight and bias)."""
    conv.weight.mul_(scale.reshape(-1, 1, 1, 1))
    if conv.bias is not None:
        conv.bias.mul_(scale)


@torch.no_grad()
def _fold_input_affine(conv: nn.Conv2d, scale: torch.Tensor, shift: torch.Tensor) -> nn.Conv2d:
    """A 1×1 (groups=1, no padding) conv computing conv(x·scale + shift) exactly, with a bias."""
    if conv.kernel_size != (1, 1) or conv.groups != 1:
        raise ValueError("an input affine folds exactly only into an unpadded 1×1 dense conv")
    w = conv.weight  # (O, I, 1, 1)
    fused = nn.Conv2d(conv.in_channels, conv.out_channels, 1, conv.stride, 0, bias=True).to(w)  # dtype/device
    fused.weight.copy_(w * scale.reshape(1, -1, 1, 1))
    bias = w[:, :, 0, 0] @ shift
    fused.bias.copy_(bias if conv.bias is None else bias + conv.bias)
    return fused


class UniversalInvertedBottleneck(Reparameterizable):
    """UIB: [start DW k_s (BN, no act)] → 1×1 expand (BN, act) → [middle DW k_m (BN, act)] → 1×1 project (BN)
    → [layer scale] → [+ x]. ``start_k``/``mid_k`` = 0 disables that DW. The stride sits on the middle DW if
    there is one, else on the start DW. Instances: ExtraDW (both), IB (mid only), ConvNeXt (start only), FFN.
    """

    def __init__(self, in_ch: int, out_ch: int, start_k: int, mid_k: int, expand: float, stride: int = 1,
                 act: type[nn.Module] = nn.ReLU, layer_scale: float | None = None):
        super().__init__()
        hidden = make_divisible(in_ch * expand, 8)
        s_start, s_mid = (1, stride) if mid_k else (stride, 1)
        self.dw_start = ConvNormAct(in_ch, in_ch, start_k, s_start, groups=in_ch) if start_k else nn.Identity()
        self.pw_exp = ConvNormAct(in_ch, hidden, 1, act=act())
        self.dw_mid = ConvNormAct(hidden, hidden, mid_k, s_mid, groups=hidden, act=act()) if mid_k else nn.Identity()
        self.pw_proj = ConvNormAct(hidden, out_ch, 1)
        self.layer_scale = LayerScale(out_ch, layer_scale) if layer_scale is not None else nn.Identity()
        self.has_skip = stride == 1 and in_ch == out_ch
        if (start_k or mid_k) and stride not in (1, 2):
            raise ValueError(f"UIB stride must be 1 or 2, got {stride}")
        if not (start_k or mid_k) and stride != 1:
            raise ValueError("a UIB without depthwise convs (FFN) cannot have a stride")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.layer_scale(self.pw_proj(self.dw_mid(self.pw_exp(self.dw_start(x)))))
        return x + y if self.has_skip else y

    @torch.no_grad()
    def reparameterize(self) -> None:
        if self.deployed:
            return
        for m in (self.dw_start, self.pw_exp, self.dw_mid, self.pw_proj):
            if isinstance(m, ConvNormAct):
                m.reparameterize()
        if isinstance(self.layer_scale, LayerScale):
            _scale_conv_out(self.pw_proj.conv, self.layer_scale.gamma)
            self.layer_scale = nn.Identity()
        self._mark_deployed()


class FusedInvertedBottleneck(nn.Module):
    """Fused-IB: k×k conv (stride s) C_in → make_divisible(C_in·e) + BN + act → 1×1 → C_out + BN [+ x]."""

    def __init__(self, in_ch: int, out_ch: int, expand: float, kernel_size: int = 3, stride: int = 1,
                 act: type[nn.Module] = nn.ReLU):
        super().__init__()
        hidden = make_divisible(in_ch * expand, 8)
        self.conv_exp = ConvNormAct(in_ch, hidden, kernel_size, stride, act=act())
        self.conv_pwl = ConvNormAct(hidden, out_ch, 1)
        self.has_skip = stride == 1 and in_ch == out_ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv_pwl(self.conv_exp(x))
        return x + y if self.has_skip else y


class MobileMQA(Reparameterizable):
    """Mobile multi-query attention block (MNv4-Hybrid), with its residual.

    x → BN → Q = 1×1 (heads·key_dim); K, V = [DW 3×3 stride kv_stride + BN] → 1×1 (key_dim / value_dim),
    single-headed and shared by all query heads; per head softmax(Q·Kᵀ/sqrt(key_dim))·V; concat heads →
    1×1 → C; layer scale; + x.
    """

    def __init__(self, channels: int, heads: int, key_dim: int, value_dim: int | None = None,
                 kv_stride: int = 1, layer_scale: float | None = 1e-5, dw_kernel: int = 3):
        super().__init__()
        value_dim = value_dim or key_dim
        if kv_stride not in (1, 2):
            raise ValueError(f"kv_stride must be 1 or 2, got {kv_stride}")
        self.heads, self.key_dim, self.value_dim = heads, key_dim, value_dim
        self.q_scale = 1.0 / math.sqrt(key_dim)
        self.norm = nn.BatchNorm2d(channels)
        self.kv_norm = nn.Identity()  # deploy form (kv_stride 2): the input affine for the K/V path
        self.query = nn.Conv2d(channels, heads * key_dim, 1, bias=False)
        self.key_down = self._down(channels, dw_kernel, kv_stride)
        self.key = nn.Conv2d(channels, key_dim, 1, bias=False)
        self.value_down = self._down(channels, dw_kernel, kv_stride)
        self.value = nn.Conv2d(channels, value_dim, 1, bias=False)
        self.output = nn.Conv2d(heads * value_dim, channels, 1, bias=False)
        self.layer_scale = LayerScale(channels, layer_scale) if layer_scale is not None else nn.Identity()

    @staticmethod
    def _down(channels: int, k: int, stride: int) -> nn.Module:
        if stride == 1:
            return nn.Identity()
        return ConvNormAct(channels, channels, k, stride, groups=channels)

    def attention(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """q (B, heads·d, H, W), k (B, d, H', W'), v (B, dv, H', W') → (B, heads·dv, H, W); rank ≤ 4."""
        b, _, h, w = q.shape
        if self.q_scale != 1.0:
            q = q * self.q_scale
        q = q.reshape(b, self.heads, self.key_dim, -1).transpose(-1, -2)  # (B, heads, HW, d); -1, not h*w: fx
        # would record h*w as a mul node, and an int8 activation quantizer then observes an int (coreml-w8a8)
        k = k.reshape(b, 1, self.key_dim, -1)  # (B, 1, d, HW'): already Kᵀ, broadcast over heads
        v = v.reshape(b, 1, self.value_dim, -1).transpose(-1, -2)  # (B, 1, HW', dv)
        attn = torch.matmul(q, k).softmax(dim=-1)  # (B, heads, HW, HW')
        o = torch.matmul(attn, v)  # (B, heads, HW, dv)
        return o.transpose(-1, -2).reshape(b, self.heads * self.value_dim, h, w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q_in = self.norm(x)  # train: BN(x); deploy: x (BN folded into the convs)
        kv_in = self.kv_norm(q_in)  # train: identity; deploy: the BN affine where it could not be folded
        q = self.query(q_in)
        k = self.key(self.key_down(kv_in))
        v = self.value(self.value_down(kv_in))
        return x + self.layer_scale(self.output(self.attention(q, k, v)))

    @torch.no_grad()
    def reparameterize(self) -> None:
        if self.deployed:
            return
        scale, shift = bn_scale_shift(self.norm)
        self.query = _fold_input_affine(self.query, scale, shift)
        _scale_conv_out(self.query, self.query.weight.new_full((self.query.out_channels,), self.q_scale))
        self.q_scale = 1.0
        if isinstance(self.key_down, nn.Identity):  # kv_stride 1: K/V are 1×1 convs of the normed input
            self.key = _fold_input_affine(self.key, scale, shift)
            self.value = _fold_input_affine(self.value, scale, shift)
        else:  # zero-padded DW conv next: keep the affine in front of it (exact)
            self.kv_norm = ChannelAffine(scale, shift)
            self.key_down.reparameterize()
            self.value_down.reparameterize()
        self.norm = nn.Identity()
        if isinstance(self.layer_scale, LayerScale):
            _scale_conv_out(self.output, self.layer_scale.gamma)
            self.layer_scale = nn.Identity()
        self._mark_deployed()
