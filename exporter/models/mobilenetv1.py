"""MobileNetV1 1.0 / 0.75 / 0.5 at 224 (baselines).

Paper: Howard et al., "MobileNets: Efficient Convolutional Neural Networks for Mobile Vision Applications",
arXiv 1704.04861 (Table 1 body, Table 6 width multipliers). Reference implementation: timm
``timm/models/efficientnet.py`` ``_gen_mobilenet_v1`` (Apache-2.0; ``mobilenetv1_100`` is registered, 0.75/0.5 are
its ``channel_multiplier``), which follows TF-slim: ReLU6, channels rounded to multiples of 8 and the stem scaled
with the width. Written from the paper, no code copied.

Ours: ``stem`` (3×3/2 ConvNormAct) → ``blocks.{s}.{j}`` (depthwise 3×3 ``dw`` → pointwise ``pw``, both
ConvNormAct + ReLU6) → global average pool → ``classifier``. No head conv (the paper pools the last
1024·α-wide pointwise output).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import torch
from torch import nn

from ..keymap import Regex, ren
from ..layers.conv import ConvNormAct, make_divisible
from ..registry import register
from ..specs import ModelSpec, Numbers, Preprocessing
from ..weights import Conventions, KeyLayout, register_layout

FAMILY = "mobilenetv1"
# (stride of the first block, repeats, output channels) per stage, the paper's Table 1 grouped as timm does
STAGES = ((1, 1, 64), (2, 2, 128), (2, 2, 256), (2, 6, 512), (2, 2, 1024))


@dataclass(frozen=True)
class MobileNetV1Cfg:
    width: float
    published: Numbers
    reference: Numbers


VARIANTS: dict[str, MobileNetV1Cfg] = {
    "mobilenetv1_100": MobileNetV1Cfg(1.0, Numbers(4_200_000, 569_000_000, 70.6), Numbers(4_231_976, 568_740_352)),
    "mobilenetv1_075": MobileNetV1Cfg(0.75, Numbers(2_600_000, 325_000_000, 68.4), Numbers(2_585_560, 325_400_448)),
    "mobilenetv1_050": MobileNetV1Cfg(0.5, Numbers(1_300_000, 149_000_000, 63.7), Numbers(1_331_592, 149_497_088)),
}

SOURCES = (
    "paper: arXiv 1704.04861 (MobileNets), Tables 1 and 6",
    "TIMM huggingface/pytorch-image-models 1.0.31: timm/models/efficientnet.py (_gen_mobilenet_v1)",
)


class DepthwiseSeparable(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.dw = ConvNormAct(cin, cin, 3, stride, cin, act=nn.ReLU6(inplace=True))
        self.pw = ConvNormAct(cin, cout, 1, act=nn.ReLU6(inplace=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pw(self.dw(x))


class MobileNetV1(nn.Module):
    def __init__(self, cfg: MobileNetV1Cfg, num_classes: int = 1000):
        super().__init__()
        cin = make_divisible(32 * cfg.width)
        self.stem = ConvNormAct(3, cin, 3, 2, act=nn.ReLU6(inplace=True))
        stages = []
        for stride, reps, c in STAGES:
            cout, blocks = make_divisible(c * cfg.width), []
            for j in range(reps):
                blocks.append(DepthwiseSeparable(cin, cout, stride if j == 0 else 1))
                cin = cout
            stages.append(nn.Sequential(*blocks))
        self.blocks = nn.Sequential(*stages)
        self.classifier = nn.Linear(cin, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(self.stem(x))
        return self.classifier(torch.flatten(x.mean((2, 3), keepdim=True), 1))


# timm: conv_stem/bn1, blocks.S.J.conv_dw/bn1/conv_pw/bn2, classifier
_STEM = Regex(((r"^conv_stem\.", "stem.conv."), (r"^bn1\.", "stem.bn.")),
              ((r"^stem\.conv\.", "conv_stem."), (r"^stem\.bn\.", "bn1.")))
_PAIRS = (("dw.conv", "conv_dw"), ("dw.bn", "bn1"), ("pw.conv", "conv_pw"), ("pw.bn", "bn2"))
TIMM = Regex(_STEM.to_ours_rules + tuple(ren(t, o) for o, t in _PAIRS),
             _STEM.from_ours_rules + tuple(ren(o, t) for o, t in _PAIRS))
register_layout(FAMILY, KeyLayout("timm", TIMM, "timm mobilenetv1_* conv_stem / blocks.S.J / classifier",
                                  Conventions(1e-5, 0.1)))


def _spec(name: str, cfg: MobileNetV1Cfg) -> ModelSpec:
    return ModelSpec(
        name=name, family=FAMILY, input_size=(3, 224, 224),
        preprocessing=Preprocessing(resize=256, crop=224, interpolation="bilinear"),
        published=cfg.published, reference=cfg.reference, sources=SOURCES,
        aliases=(f"mobilenet_v1_{round(cfg.width * 100):03d}",),
        notes="Published: the paper (params/MACs with TF-slim's rounding; top-1 of Table 6). Reference params and "
              "MACs: timm 1.0.31 _gen_mobilenet_v1 with this channel multiplier (torch FlopCounterMode / 2).")


def build_mobilenetv1(cfg: MobileNetV1Cfg, num_classes: int = 1000) -> MobileNetV1:
    return MobileNetV1(cfg, num_classes)


for _name, _cfg in VARIANTS.items():
    register(_spec(_name, _cfg), partial(build_mobilenetv1, _cfg))
