"""MoGA-A / B / C — mobile GPU-aware searched networks.

Paper: Chu, Zhang, Xu, "MoGA: Searching Beyond MobileNetV3", ICASSP 2020, arXiv 1908.01314.
Reference code: xiaomi-automl/MoGA ``models/MoGA_{A,B,C}.py`` (MIT licence); its ``verify.py`` loads the released
checkpoints (weights under ``model_state``) strictly, which fixes the key layout registered here as ``official``.

MNv3-style network: h-swish stem, a separable DW+PW block (no residual), 14 inverted-residual blocks with
per-block kernel / expansion / SE / activation, a 1×1 to 960 before pooling, and a 960→1280 1×1 (no bias, no BN)
+ h-swish after pooling. Dropout is training-only and omitted.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..keymap import Prefixes
from ..layers import ConvNormAct
from ..registry import register
from ..specs import ModelSpec, Numbers, Preprocessing
from ..weights import KeyLayout, register_layout

FAMILY = "moga"
STEM_CH, SEP_CH, HEAD_CH, FEATURE_CH = 16, 16, 960, 1280
_ACTS = {"re": nn.ReLU, "hs": nn.Hardswish}


@dataclass(frozen=True)
class MB:
    """One inverted-residual block: expansion, output channels, DW kernel, stride, act ("re"/"hs"), SE."""

    e: int
    out: int
    k: int
    s: int
    act: str
    se: bool = False


class MoGASqueezeExcite(nn.Module):
    """avgpool → 1×1 (C → C//4, bias) → the block's act → 1×1 (back to C, bias) → h-sigmoid → x · gate."""

    def __init__(self, channels: int, act: type[nn.Module]):
        super().__init__()
        reduced = channels // 4
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.reduce = nn.Conv2d(channels, reduced, 1)
        self.act = act()
        self.expand = nn.Conv2d(reduced, channels, 1)
        self.gate = nn.Hardsigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(self.expand(self.act(self.reduce(self.pool(x)))))


class MoGABlock(nn.Module):
    """1×1 expand (BN, act) → DW k×k stride s (BN, act) → [SE] → 1×1 project (BN) [+ x if s = 1, C_in = C_out].

    hidden = round(C_in · e) (plain rounding, no divisor), as in the reference.
    """

    def __init__(self, in_ch: int, cfg: MB):
        super().__init__()
        act = _ACTS[cfg.act]
        hidden = round(in_ch * cfg.e)
        self.expand = ConvNormAct(in_ch, hidden, 1, act=act())
        self.dw = ConvNormAct(hidden, hidden, cfg.k, cfg.s, groups=hidden, act=act())
        self.se = MoGASqueezeExcite(hidden, act) if cfg.se else nn.Identity()
        self.project = ConvNormAct(hidden, cfg.out, 1)
        self.has_skip = cfg.s == 1 and in_ch == cfg.out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.project(self.se(self.dw(self.expand(x))))
        return x + y if self.has_skip else y


class MoGA(nn.Module):
    def __init__(self, blocks: tuple[MB, ...], num_classes: int = 1000):
        super().__init__()
        self.stem = ConvNormAct(3, STEM_CH, 3, 2, act=nn.Hardswish())
        self.separable = nn.Sequential(
            ConvNormAct(STEM_CH, STEM_CH, 3, 1, groups=STEM_CH, act=nn.ReLU()),
            ConvNormAct(STEM_CH, SEP_CH, 1),
        )
        ch, layers = SEP_CH, []
        for cfg in blocks:
            layers.append(MoGABlock(ch, cfg))
            ch = cfg.out
        self.blocks = nn.Sequential(*layers)
        self.conv_before_pooling = ConvNormAct(ch, HEAD_CH, 1, act=nn.Hardswish())
        self.global_pool = nn.AdaptiveAvgPool2d(1)
        self.conv_head = nn.Conv2d(HEAD_CH, FEATURE_CH, 1, bias=False)
        self.head_act = nn.Hardswish()
        self.flatten = nn.Flatten(1)
        self.classifier = nn.Linear(FEATURE_CH, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv_before_pooling(self.blocks(self.separable(self.stem(x))))
        x = self.head_act(self.conv_head(self.global_pool(x)))
        return self.classifier(self.flatten(x))


# ---------------------------------------------------------------------------------------------------------
# Variants (the paper's; the code is canonical where the paper's figure differs — MoGA-A SE on block 5).

MOGA_A = (
    MB(6, 24, 5, 2, "re"), MB(6, 24, 7, 1, "re"), MB(6, 40, 3, 2, "re"), MB(6, 40, 3, 1, "re", True),
    MB(3, 40, 3, 1, "re", True), MB(6, 80, 3, 2, "hs", True), MB(6, 80, 3, 1, "hs"), MB(6, 80, 7, 1, "hs"),
    MB(3, 80, 7, 1, "hs", True), MB(6, 112, 7, 1, "hs"), MB(6, 112, 3, 1, "hs"), MB(6, 160, 3, 2, "hs"),
    MB(6, 160, 5, 1, "hs", True), MB(6, 160, 5, 1, "hs", True),
)
MOGA_B = (
    MB(3, 24, 3, 2, "re"), MB(3, 24, 3, 1, "re"), MB(6, 40, 7, 2, "re"), MB(3, 40, 3, 1, "re"),
    MB(6, 40, 5, 1, "re"), MB(6, 80, 3, 2, "hs", True), MB(6, 80, 5, 1, "hs", True), MB(3, 80, 3, 1, "hs"),
    MB(6, 80, 7, 1, "hs", True), MB(6, 112, 7, 1, "hs"), MB(3, 112, 5, 1, "hs"), MB(6, 160, 7, 2, "hs", True),
    MB(6, 160, 7, 1, "hs", True), MB(6, 160, 3, 1, "hs", True),
)
MOGA_C = (
    MB(3, 24, 5, 2, "re"), MB(3, 24, 3, 1, "re"), MB(3, 40, 5, 2, "re"), MB(3, 40, 3, 1, "re"),
    MB(3, 40, 5, 1, "re"), MB(3, 80, 5, 2, "hs"), MB(6, 80, 5, 1, "hs", True), MB(3, 80, 5, 1, "hs"),
    MB(3, 80, 5, 1, "hs"), MB(6, 112, 3, 1, "hs"), MB(6, 112, 3, 1, "hs", True), MB(6, 160, 3, 2, "hs", True),
    MB(6, 160, 3, 1, "hs", True), MB(6, 160, 3, 1, "hs", True),
)


@dataclass(frozen=True)
class Variant:
    name: str
    blocks: tuple[MB, ...]
    published: Numbers
    reference: Numbers
    notes: str = ""


VARIANTS = (
    Variant("moga_a", MOGA_A, Numbers(5_100_000, 304_000_000, 75.9), Numbers(5_159_802, 304_000_000),
            "Top-5 92.8. Paper Fig. 8 puts SE on block 2 instead of 5; the code (and checkpoint) is canonical."),
    Variant("moga_b", MOGA_B, Numbers(5_500_000, 248_000_000, 75.5), Numbers(5_506_236, 248_600_000),
            "Top-5 92.6."),
    Variant("moga_c", MOGA_C, Numbers(5_400_000, 221_000_000, 75.3), Numbers(5_488_200, 221_100_000),
            "Top-5 92.5. Measured params round to 5.5M; the paper prints 5.4M."),
)

# ---------------------------------------------------------------------------------------------------------
# Official key layout (xiaomi-automl/MoGA, plain nn.Sequential indices). Prefix pairs (ours, theirs), matched
# longest first; the same table maps deploy-form keys (conv.bias) both ways.
_BLOCK = (("expand.conv.", "conv1."), ("expand.bn.", "bn1."), ("dw.conv.", "conv2."), ("dw.bn.", "bn2."),
          ("se.reduce.", "mid_se.conv.0."), ("se.expand.", "mid_se.fc.0."), ("project.conv.", "conv3."),
          ("project.bn.", "bn3."))
register_layout(FAMILY, KeyLayout("official", Prefixes((
    ("stem.conv.", "stem.0."), ("stem.bn.", "stem.1."),
    ("separable.0.conv.", "separable_conv.0."), ("separable.0.bn.", "separable_conv.1."),
    ("separable.1.conv.", "separable_conv.3."), ("separable.1.bn.", "separable_conv.4."),
    ("blocks.", "mb_module."), *((f"blocks.{{i}}.{o}", f"mb_module.{{i}}.{t}") for o, t in _BLOCK),
    ("conv_before_pooling.conv.", "conv_before_pooling.0."), ("conv_before_pooling.bn.", "conv_before_pooling.1."),
    ("conv_head.", "conv_head.0."))),
    "xiaomi-automl/MoGA model_state: stem.{0,1}, separable_conv.{0,1,3,4}, mb_module.{i}.*"))

_SOURCES = ("MOGA xiaomi-automl/MoGA@305588d models/MoGA_{A,B,C}.py, verify.py, dataloader.py",
            "arXiv:1908.01314 (paper Table 3 = images/specs.png)")
# dataloader.py: resize shorter side 256 → centre crop 224, ImageNet mean/std, torchvision default (bilinear)
_PREPROCESSING = Preprocessing(resize=256, crop=224, interpolation="bilinear")


def _builder(blocks: tuple[MB, ...]):
    def build(num_classes: int = 1000) -> MoGA:
        return MoGA(blocks, num_classes)

    return build


for _v in VARIANTS:
    register(ModelSpec(
        name=_v.name, family=FAMILY, input_size=(3, 224, 224), preprocessing=_PREPROCESSING,
        published=_v.published, reference=_v.reference, sources=_SOURCES, notes=_v.notes), _builder(_v.blocks))
