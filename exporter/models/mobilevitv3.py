"""MobileViTv3: v1-style XXS/XS/S (+ low-latency L2 variants) and v2-style 0.5/0.75/1.0.

Paper: Wadekar & Chaurasia, "MobileViTv3: Mobile-Friendly Vision Transformer with Simple and Effective Fusion
of Local, Global and Input Features", arXiv 2209.15159 (2022).
Reference: micronDLA/MobileViTv3 (overlays on apple/ml-cvnets), MIT-style licence of micronDLA plus Apple's
sample-code licence for the cvnets base; this file is an independent implementation from the paper.

Two checkpoint layouts: ours, and cvnets ("cvnets", both styles), which differs only in ConvLayer naming:
cvnets ``<m>.block.conv.*`` / ``<m>.block.norm.*`` ↔ ours ``<m>.conv.*`` / ``<m>.bn.*``.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from torch import nn

from ..keymap import Regex
from ..layers.conv import ConvNormAct, make_divisible
from ..layers.mobilevit import GlobalMeanPool, MobileViTv3BlockV1, MobileViTv3BlockV2, MV2Block
from ..registry import register
from ..specs import NO_NORM_MEAN, NO_NORM_STD, ModelSpec, Numbers, Preprocessing
from ..weights import KeyLayout, register_layout

FAMILY = "mobilevitv3"
SOURCES = (
    "arXiv:2209.15159 (MobileViTv3)",
    "https://github.com/micronDLA/MobileViTv3 @ d381beb017ae3c244686afaa48064f95865df7b9",
    "https://github.com/apple/ml-cvnets (base of the v1/v2-style overlays)",
)


# ---------------------------------------------------------------------------------------------------------
# Networks

def _stage(in_ch: int, out_ch: int, stride: int, expansion: float, count: int) -> nn.Sequential:
    return nn.Sequential(*[MV2Block(in_ch if i == 0 else out_ch, out_ch, stride if i == 0 else 1, expansion)
                           for i in range(count)])


@dataclass(frozen=True)
class V1Config:
    """v1-style (CVNETS-v1 overlay). ``channels`` = layer_1..layer_5 outputs; ``dims``/``ffn``/``depths`` for
    the v3 blocks in layers 3–5."""

    channels: tuple[int, int, int, int, int]
    expansion: int
    dims: tuple[int, int, int]
    ffn: tuple[int, int, int]
    depths: tuple[int, int, int]
    heads: int = 4
    stem: int = 16
    dropout: float = 0.1


class MobileViTv3V1(nn.Module):
    def __init__(self, cfg: V1Config, num_classes: int = 1000):
        super().__init__()
        c, e = cfg.channels, cfg.expansion
        self.conv_1 = ConvNormAct(3, cfg.stem, 3, stride=2, act=nn.SiLU())
        self.layer_1 = _stage(cfg.stem, c[0], 1, e, 1)
        self.layer_2 = _stage(c[0], c[1], 2, e, 3)
        for i in range(3):
            block = MobileViTv3BlockV1(c[i + 2], cfg.dims[i], cfg.ffn[i], cfg.depths[i], cfg.heads)
            setattr(self, f"layer_{i + 3}", nn.Sequential(MV2Block(c[i + 1], c[i + 2], 2, e), block))
        exp = min(4 * c[4], 960)
        self.conv_1x1_exp = ConvNormAct(c[4], exp, 1, act=nn.SiLU())
        self.classifier = nn.Sequential(OrderedDict(
            global_pool=GlobalMeanPool(), dropout=nn.Dropout(cfg.dropout), fc=nn.Linear(exp, num_classes)))

    def forward(self, x):
        x = self.conv_1(x)
        for i in range(1, 6):
            x = getattr(self, f"layer_{i}")(x)
        return self.classifier(self.conv_1x1_exp(x))


@dataclass(frozen=True)
class V2Config:
    """v2-style (CVNETS-v2 overlay), all widths derived from the multiplier ``width``."""

    width: float
    depths: tuple[int, int, int] = (2, 4, 3)
    expansion: int = 2


class MobileViTv3V2(nn.Module):
    def __init__(self, cfg: V2Config, num_classes: int = 1000):
        super().__init__()
        w = cfg.width
        stem = make_divisible(min(max(32 * w, 16), 64), 8, 16)
        c = [make_divisible(64 * w, 16)] + [make_divisible(v * w, 8) for v in (128, 256, 384, 512)]
        dims = [make_divisible(v * w, 8) for v in (128, 192, 256)]
        self.conv_1 = ConvNormAct(3, stem, 3, stride=2, act=nn.SiLU())
        self.layer_1 = _stage(stem, c[0], 1, cfg.expansion, 1)
        self.layer_2 = _stage(c[0], c[1], 2, cfg.expansion, 2)
        for i in range(3):
            block = MobileViTv3BlockV2(c[i + 2], dims[i], cfg.depths[i])
            setattr(self, f"layer_{i + 3}", nn.Sequential(MV2Block(c[i + 1], c[i + 2], 2, cfg.expansion), block))
        self.classifier = nn.Sequential(GlobalMeanPool(), nn.Linear(c[4], num_classes))

    def forward(self, x):
        x = self.conv_1(x)
        for i in range(1, 6):
            x = getattr(self, f"layer_{i}")(x)
        return self.classifier(x)


# ---------------------------------------------------------------------------------------------------------
# Variants (data)

V1_VARIANTS: dict[str, V1Config] = {
    "xxs": V1Config((16, 24, 64, 80, 128), 2, (64, 80, 96), (128, 160, 192), (2, 4, 3)),
    "xs": V1Config((32, 48, 96, 160, 160), 4, (96, 120, 144), (192, 240, 288), (2, 4, 3)),
    "s": V1Config((32, 64, 128, 256, 320), 4, (144, 192, 240), (288, 384, 480), (2, 4, 3)),
    "xxs_l2": V1Config((16, 24, 64, 80, 128), 2, (64, 80, 96), (128, 160, 192), (2, 2, 3)),
    "xs_l2": V1Config((32, 48, 96, 160, 160), 4, (96, 120, 144), (192, 240, 288), (2, 2, 3)),
    "s_l2": V1Config((32, 64, 128, 256, 320), 4, (144, 192, 240), (288, 384, 480), (2, 2, 3)),
}
V2_VARIANTS: dict[str, V2Config] = {"0_5": V2Config(0.5), "0_75": V2Config(0.75), "1_0": V2Config(1.0)}


@dataclass(frozen=True)
class Published:
    """README/paper numbers (MACs from the cvnets profiler) and our measurements of the reference code:
    params and exact MACs (FlopCounterMode/2, the convention of exporter.profile) plus cvnets-profiler MACs."""

    params: float
    macs_m: float
    top1: float
    ref_params: int
    ref_macs_exact_m: float
    ref_macs_cvnets_m: float


NUMBERS: dict[str, Published] = {
    "xxs": Published(1.2e6, 289, 70.98, 1_249_448, 332.2, 289.0),
    "xs": Published(2.5e6, 927, 76.7, 2_490_360, 966.6, 927.0),
    "s": Published(5.8e6, 1841, 79.3, 5_763_912, 1832.7, 1841.4),
    "xxs_l2": Published(1.1e6, 256, 70.23, 1_145_288, 300.7, 256.0),
    "xs_l2": Published(2.3e6, 853, 76.10, 2_257_320, 899.8, 852.8),
    "s_l2": Published(5.2e6, 1651, 79.06, 5_169_864, 1669.1, 1652.0),
    "0_5": Published(1.4e6, 481, 72.33, 1_429_985, 479.8, 481.3),
    "0_75": Published(3.0e6, 1064, 76.55, 2_999_641, 1062.2, 1064.5),
    "1_0": Published(5.1e6, 1876, 78.64, 5_139_409, 1872.9, 1876.0),
}

PRE_V1 = Preprocessing(resize=288, crop=256, mean=NO_NORM_MEAN, std=NO_NORM_STD, color="BGR",
                       interpolation="bilinear")
PRE_V2 = Preprocessing(resize=288, crop=256, mean=NO_NORM_MEAN, std=NO_NORM_STD, color="RGB",
                       interpolation="bicubic")
NOTE_V1 = ("v1-style (CVNETS-v1): trained on BGR images (cv2.imread, never converted), pixels/255, no mean/std. "
           "L2 = low-latency variant (layer_4 has 2 transformer layers). ")
NOTE_V2 = "v2-style (CVNETS-v2): RGB (PIL), pixels/255, no mean/std, bicubic resize. "


def _spec(name: str, style: str, n: Published) -> ModelSpec:
    note = (NOTE_V1 if style == "v1" else NOTE_V2) + (
        f"published MACs ({n.macs_m:g}M) are cvnets-profiler MACs (reference measured: {n.ref_macs_cvnets_m}M); "
        f"reference.macs is the exact count (FlopCounterMode/2) of the reference code, {n.ref_macs_exact_m}M, "
        "the convention of exporter.profile.count_macs. cvnets charges each attention product as N·d² per "
        "sequence instead of N²·d. reference.params counts the reference's only (train) form; our BN-folded "
        "deploy form is 0.15-0.27% smaller (BN γ/β become a conv bias). No reparameterization beyond BN "
        "folding; LayerNorm/GroupNorm stay. Any input of at least 32x32 works: where a transformer stage's map "
        "has an odd side, the block interpolates it to even size for the 2x2 patches, as cvnets does (inputs "
        "that are multiples of 64 need none; 224 interpolates in the last stage).")
    return ModelSpec(
        name=f"mobilevitv3_{name}", family=FAMILY, input_size=(3, 256, 256),
        preprocessing=PRE_V1 if style == "v1" else PRE_V2,
        published=Numbers(params=int(n.params), macs=int(n.macs_m * 1e6), top1=n.top1),
        reference=Numbers(params=n.ref_params, macs=int(round(n.ref_macs_exact_m * 1e6))),
        sources=SOURCES, kind="hybrid", notes=note)


def _v1_builder(cfg: V1Config):
    return lambda num_classes=1000: MobileViTv3V1(cfg, num_classes)


def _v2_builder(cfg: V2Config):
    return lambda num_classes=1000: MobileViTv3V2(cfg, num_classes)


for _name, _cfg in V1_VARIANTS.items():
    register(_spec(_name, "v1", NUMBERS[_name]), _v1_builder(_cfg))
for _name, _cfg in V2_VARIANTS.items():
    register(_spec(_name, "v2", NUMBERS[_name]), _v2_builder(_cfg))


# ---------------------------------------------------------------------------------------------------------
# cvnets checkpoint layout (both styles)

# the last module of a key: ConvNormAct's conv / bn ↔ ConvLayer's block.conv / block.norm
register_layout(FAMILY, KeyLayout("cvnets", Regex(
    to_ours_rules=((r"(^|\.)block\.conv(\.[^.]+)$", r"\1conv\2"), (r"(^|\.)block\.norm(\.[^.]+)$", r"\1bn\2")),
    from_ours_rules=((r"(^|\.)conv(\.[^.]+)$", r"\1block.conv\2"), (r"(^|\.)bn(\.[^.]+)$", r"\1block.norm\2"))),
    "micronDLA/MobileViTv3 checkpoint_ema_best.pt (cvnets ConvLayer: block.conv / block.norm)"))
