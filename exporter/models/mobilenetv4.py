"""MobileNetV4 — Conv-S/M/L and Hybrid-M/L (Mobile MQA).

Paper: Qin et al., "MobileNetV4 — Universal Models for the Mobile Ecosystem", ECCV 2024, arXiv 2404.10518.
Reference code: tensorflow/models ``official/vision/modeling/backbones/mobilenet.py`` (Apache-2.0; canonical
architecture) and huggingface/pytorch-image-models ``timm/models/mobilenetv3.py`` (Apache-2.0; the only public
weights, hence the checkpoint key layout registered here as ``timm``).

Variants are data: per model a stem width, an activation, whether blocks carry layer scale, and per stage a
tuple of block configs (the stage grouping follows timm so that ``blocks.{stage}.{index}`` keys line up).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..keymap import Grouped, Prefixes
from ..layers import ConvNormAct
from ..layers.uib import FusedInvertedBottleneck, MobileMQA, UniversalInvertedBottleneck
from ..registry import register
from ..specs import ModelSpec, Numbers, Preprocessing
from ..weights import KeyLayout, register_layout

FAMILY = "mobilenetv4"
LAYER_SCALE_INIT = 1e-5
HEAD_CH, FEATURE_CH = 960, 1280


@dataclass(frozen=True)
class Conv:
    """Conv2D block: k×k conv + BN + act."""

    out: int
    k: int
    s: int = 1


@dataclass(frozen=True)
class Fused:
    """Fused-IB: k×k expand (stride s) + 1×1 project."""

    out: int
    e: float
    k: int = 3
    s: int = 2


@dataclass(frozen=True)
class UIB:
    """UIB with start DW kernel ``a`` and middle DW kernel ``m`` (0 = absent); ``n`` repeats, stride on the first."""

    out: int
    a: int
    m: int
    e: float
    s: int = 1
    n: int = 1


@dataclass(frozen=True)
class MQA:
    """Mobile MQA block: ``heads`` query heads, key = value dim ``d``, K/V downsampling stride ``kv``."""

    heads: int
    d: int
    kv: int


@dataclass(frozen=True)
class MNv4Config:
    stem: int
    stages: tuple[tuple, ...]
    act: str = "relu"
    layer_scale: bool = False


_ACTS = {"relu": nn.ReLU, "gelu": nn.GELU}  # GELU = exact (erf), as in timm and TF
_HEAD = (Conv(HEAD_CH, 1),)

CONV_S = MNv4Config(stem=32, stages=(
    (Conv(32, 3, 2), Conv(32, 1)),
    (Conv(96, 3, 2), Conv(64, 1)),
    (UIB(96, 5, 5, 3, s=2), UIB(96, 0, 3, 2, n=4), UIB(96, 3, 0, 4)),
    (UIB(128, 3, 3, 6, s=2), UIB(128, 5, 5, 4), UIB(128, 0, 5, 4), UIB(128, 0, 5, 3), UIB(128, 0, 3, 4, n=2)),
    _HEAD,
))
CONV_M = MNv4Config(stem=32, stages=(
    (Fused(48, 4),),
    (UIB(80, 3, 5, 4, s=2), UIB(80, 3, 3, 2)),
    (UIB(160, 3, 5, 6, s=2), UIB(160, 3, 3, 4, n=2), UIB(160, 3, 5, 4), UIB(160, 3, 3, 4), UIB(160, 3, 0, 4),
     UIB(160, 0, 0, 2), UIB(160, 3, 0, 4)),
    (UIB(256, 5, 5, 6, s=2), UIB(256, 5, 5, 4), UIB(256, 3, 5, 4, n=2), UIB(256, 0, 0, 4), UIB(256, 3, 0, 4),
     UIB(256, 3, 5, 2), UIB(256, 5, 5, 4), UIB(256, 0, 0, 4, n=2), UIB(256, 5, 0, 2)),
    _HEAD,
))
CONV_L = MNv4Config(stem=24, stages=(
    (Fused(48, 4),),
    (UIB(96, 3, 5, 4, s=2), UIB(96, 3, 3, 4)),
    (UIB(192, 3, 5, 4, s=2), UIB(192, 3, 3, 4, n=3), UIB(192, 3, 5, 4), UIB(192, 5, 3, 4, n=5), UIB(192, 3, 0, 4)),
    (UIB(512, 5, 5, 4, s=2, n=4), UIB(512, 5, 0, 4), UIB(512, 5, 3, 4), UIB(512, 5, 0, 4, n=2), UIB(512, 5, 3, 4),
     UIB(512, 5, 5, 4), UIB(512, 5, 0, 4, n=3)),
    _HEAD,
))
_M24, _M12 = MQA(4, 64, 2), MQA(4, 64, 1)
HYBRID_M = MNv4Config(stem=32, layer_scale=True, stages=(
    (Fused(48, 4),),
    (UIB(80, 3, 5, 4, s=2), UIB(80, 3, 3, 2)),
    (UIB(160, 3, 5, 6, s=2), UIB(160, 0, 0, 2), UIB(160, 3, 3, 4), UIB(160, 3, 5, 4), _M24, UIB(160, 3, 3, 4),
     _M24, UIB(160, 3, 0, 4), _M24, UIB(160, 3, 3, 4), _M24, UIB(160, 3, 0, 4)),
    (UIB(256, 5, 5, 6, s=2), UIB(256, 5, 5, 4), UIB(256, 3, 5, 4, n=2), UIB(256, 0, 0, 2), UIB(256, 3, 5, 2),
     UIB(256, 0, 0, 2), UIB(256, 0, 0, 4), _M12, UIB(256, 3, 0, 4), _M12, UIB(256, 5, 5, 4), _M12,
     UIB(256, 5, 0, 4), _M12, UIB(256, 5, 0, 4)),
    _HEAD,
))
_L24, _L12 = MQA(8, 48, 2), MQA(8, 64, 1)
HYBRID_L = MNv4Config(stem=24, act="gelu", layer_scale=True, stages=(
    (Fused(48, 4),),
    (UIB(96, 3, 5, 4, s=2), UIB(96, 3, 3, 4)),
    (UIB(192, 3, 5, 4, s=2), UIB(192, 3, 3, 4, n=3), UIB(192, 3, 5, 4), UIB(192, 5, 3, 4, n=2), _L24,
     UIB(192, 5, 3, 4), _L24, UIB(192, 5, 3, 4), _L24, UIB(192, 5, 3, 4), _L24, UIB(192, 3, 0, 4)),
    (UIB(512, 5, 5, 4, s=2, n=4), UIB(512, 5, 0, 4), UIB(512, 5, 3, 4), UIB(512, 5, 0, 4, n=2), UIB(512, 5, 3, 4),
     UIB(512, 5, 5, 4), _L12, UIB(512, 5, 0, 4), _L12, UIB(512, 5, 0, 4), _L12, UIB(512, 5, 0, 4), _L12,
     UIB(512, 5, 0, 4)),
    _HEAD,
))


def _build_block(cfg, in_ch: int, act: type[nn.Module], ls: float | None, first: bool) -> nn.Module:
    if isinstance(cfg, Conv):
        return ConvNormAct(in_ch, cfg.out, cfg.k, cfg.s, act=act())
    if isinstance(cfg, Fused):
        return FusedInvertedBottleneck(in_ch, cfg.out, cfg.e, cfg.k, cfg.s, act=act)
    if isinstance(cfg, UIB):
        return UniversalInvertedBottleneck(in_ch, cfg.out, cfg.a, cfg.m, cfg.e, cfg.s if first else 1, act, ls)
    if isinstance(cfg, MQA):
        return MobileMQA(in_ch, cfg.heads, cfg.d, cfg.d, cfg.kv, layer_scale=ls)
    raise TypeError(f"unknown MobileNetV4 block config {cfg!r}")


def _expand(cfg) -> list[tuple[object, bool]]:
    """(block config, is-first-of-its-repeat-group) per block."""
    n = cfg.n if isinstance(cfg, UIB) else 1
    return [(cfg, i == 0) for i in range(n)]


class MobileNetV4(nn.Module):
    def __init__(self, cfg: MNv4Config, num_classes: int = 1000):
        super().__init__()
        act = _ACTS[cfg.act]
        ls = LAYER_SCALE_INIT if cfg.layer_scale else None
        self.stem = ConvNormAct(3, cfg.stem, 3, 2, act=act())
        ch, stages = cfg.stem, []
        for stage in cfg.stages:
            blocks = []
            for block_cfg, first in (item for c in stage for item in _expand(c)):
                blocks.append(_build_block(block_cfg, ch, act, ls, first))
                ch = block_cfg.out if hasattr(block_cfg, "out") else ch
            stages.append(nn.Sequential(*blocks))
        self.blocks = nn.Sequential(*stages)
        self.global_pool = nn.AdaptiveAvgPool2d(1)
        self.conv_head = ConvNormAct(ch, FEATURE_CH, 1, act=act())  # after pooling: 1×1 map, no bias + BN
        self.flatten = nn.Flatten(1)
        self.classifier = nn.Linear(FEATURE_CH, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.global_pool(self.blocks(self.stem(x)))
        return self.classifier(self.flatten(self.conv_head(x)))


# ---------------------------------------------------------------------------------------------------------
# timm key layout. Our names equal timm's for UIB blocks, MQA norm and layer scale; the rest is renamed per
# block kind (ours ↔ timm). The kind comes from the keys present under the block prefix.

_FUSED = Prefixes((("conv_exp.conv.", "conv_exp."), ("conv_exp.bn.", "bn1."), ("conv_pwl.conv.", "conv_pwl."),
                   ("conv_pwl.bn.", "bn2.")))
_MQA = Prefixes((("query.", "attn.query.proj."), ("key_down.conv.", "attn.key.down_conv."),
                 ("key_down.bn.", "attn.key.norm."), ("key.", "attn.key.proj."),
                 ("value_down.conv.", "attn.value.down_conv."), ("value_down.bn.", "attn.value.norm."),
                 ("value.", "attn.value.proj."), ("output.", "attn.output.proj."), ("kv_norm.", "attn.kv_norm.")))
register_layout(FAMILY, KeyLayout("timm", Grouped(
    r"blocks\.\d+\.\d+\.", kinds=((("conv_exp.", "conv_exp."), _FUSED), (("query.", "attn."), _MQA)),
    default=Prefixes((("conv.", "conv."), ("bn.", "bn1."))),
    outside=Prefixes((("stem.conv.", "conv_stem."), ("stem.bn.", "bn1."), ("conv_head.conv.", "conv_head."),
                      ("conv_head.bn.", "norm_head.")))),
    description="timm mobilenetv4_* (MobileNetV3 class): conv_stem/bn1, blocks.{s}.{i}.*, conv_head, norm_head"))


# ---------------------------------------------------------------------------------------------------------
# Registration: the numbers are data (the paper's tables).

_TIMM = "TIMM huggingface/pytorch-image-models@aa4b585 timm/models/mobilenetv3.py (_gen_mobilenet_v4)"
_TF = "TF-MNV4 tensorflow/models@001ec92 official/vision/modeling/backbones/mobilenet.py"
_PAPER = "MNV4-PAPER arXiv:2404.10518 Tab. 6, Tabs. 11-15"


@dataclass(frozen=True)
class Variant:
    name: str
    alias: str
    cfg: MNv4Config
    res: int
    published: Numbers
    reference: Numbers
    notes: str = ""


_CODE_NOTE = "Code-defined architecture (TF and timm agree) is ~5% larger than the paper's Tab. 6 figures."
VARIANTS = (
    Variant("mnv4_conv_s", "mobilenetv4_conv_small", CONV_S, 224, Numbers(3_800_000, 200_000_000, 73.8),
            Numbers(3_774_024, 186_000_000)),
    Variant("mnv4_conv_m", "mobilenetv4_conv_medium", CONV_M, 256, Numbers(9_200_000, 1_000_000_000, 79.9),
            Numbers(9_715_512, 1_080_200_000), _CODE_NOTE),
    Variant("mnv4_conv_l", "mobilenetv4_conv_large", CONV_L, 384, Numbers(31_000_000, 5_900_000_000, 82.9),
            Numbers(32_590_864, 6_376_200_000), _CODE_NOTE),
    Variant("mnv4_hybrid_m", "mobilenetv4_hybrid_medium", HYBRID_M, 256,
            Numbers(10_500_000, 1_200_000_000, 80.7), Numbers(11_074_648, 1_271_200_000),
            _CODE_NOTE + " Paper Tab. 13 differs from the code; the code table is canonical."),
    Variant("mnv4_hybrid_l", "mobilenetv4_hybrid_large", HYBRID_L, 384,
            Numbers(35_900_000, 7_200_000_000, 83.4), Numbers(37_764_624, 7_711_900_000), _CODE_NOTE),
)


def _preprocessing(res: int) -> Preprocessing:
    # timm MNv4 weights: ImageNet mean/std, bicubic, crop_pct 0.95 → resize floor(res / 0.95)
    return Preprocessing(resize=int(res / 0.95), crop=res, interpolation="bicubic")


def _builder(cfg: MNv4Config):
    def build(num_classes: int = 1000) -> MobileNetV4:
        return MobileNetV4(cfg, num_classes)

    return build


for _v in VARIANTS:
    register(ModelSpec(
        name=_v.name, family=FAMILY, input_size=(3, _v.res, _v.res), preprocessing=_preprocessing(_v.res),
        published=_v.published, reference=_v.reference, sources=(_PAPER, _TF, _TIMM), aliases=(_v.alias,),
        kind="hybrid" if any(isinstance(b, MQA) for s in _v.cfg.stages for b in s) else "conv",
        notes=_v.notes), _builder(_v.cfg))
