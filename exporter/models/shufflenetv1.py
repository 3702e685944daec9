"""ShuffleNetV1 1.0× with 3 groups (baseline).

Paper: Zhang, Zhou, Lin, Sun, "ShuffleNet: An Extremely Efficient Convolutional Neural Network for Mobile
Devices", CVPR 2018, arXiv 1707.01083 (Table 1, g = 3). Neither torchvision nor timm has it; the reference
implementation is the authors' megvii-model/ShuffleNet-Series ``ShuffleNetV1/network.py`` + ``blocks.py`` (MIT
licence, with the released checkpoints). Written from the paper, no code copied.

Unit: 1×1 grouped conv (g groups; plain in the network's very first unit, whose input has only 24 channels) →
BN → ReLU → 3×3 depthwise (stride) → BN → channel shuffle → 1×1 grouped conv → BN (the paper shuffles before the
depthwise conv; a channel permutation commutes with it, and the authors' code, whose weights we load, after); stride 1 adds the input then
ReLU, stride 2 concatenates a 3×3/2 average pool of the input with the ReLU'd branch (which then only produces
the missing channels). The bottleneck is ¼ of the unit's output. The authors' code shuffles with a
(C/g, g) reshape — the transpose of the paper's (g, C/g) — and a checkpoint is only right with theirs, so ours
does the same (``channel_shuffle(x, C/g)``).

Ours: ``stem`` (3×3/2 ConvNormAct + ReLU) → 3×3/2 max pool → ``blocks.{i}`` (``pw1`` → shuffle → ``dw`` → ``pw2``)
→ global average pool → ``classifier`` (no bias, as the reference).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import partial

import torch
from torch import nn

from ..keymap import Regex
from ..layers.conv import ConvNormAct
from ..layers.shuffle import NonNegMaxPool, channel_shuffle
from ..registry import register
from ..specs import NO_NORM_MEAN, ModelSpec, Numbers, Preprocessing
from ..weights import Conventions, KeyLayout, register_layout

FAMILY = "shufflenetv1"
REPEATS = (4, 8, 4)


@dataclass(frozen=True)
class ShuffleNetV1Cfg:
    groups: int
    stem: int
    widths: tuple[int, int, int]
    published: Numbers
    reference: Numbers


VARIANTS: dict[str, ShuffleNetV1Cfg] = {
    "shufflenetv1_g3_100": ShuffleNetV1Cfg(3, 24, (240, 480, 960), Numbers(1_900_000, 140_000_000, 67.8),
                                           Numbers(1_864_728, 137_460_672)),
}

SOURCES = (
    "paper: arXiv 1707.01083 (ShuffleNet), Tables 1-2",
    "MEGVII megvii-model/ShuffleNet-Series@aa91feb71b01f28d0b8da3533d20a3edb11b1810: ShuffleNetV1/network.py, "
    "blocks.py, README.md (1.0x g=3: 138M FLOPs, 1.9M params, top-1 error 32.2)",
)


class ShuffleV1Unit(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, groups: int, first: bool):
        super().__init__()
        mid = cout // 4
        branch_out = cout - cin if stride == 2 else cout
        self.groups, self.stride = groups, stride
        self.shuffle = mid // groups  # the authors' (C/g, g) reshape, see the module docstring
        self.pw1 = ConvNormAct(cin, mid, 1, groups=1 if first else groups, act=nn.ReLU(inplace=True))
        self.dw = ConvNormAct(mid, mid, 3, stride, mid)
        self.pw2 = ConvNormAct(mid, branch_out, 1, groups=groups)
        self.pool = nn.AvgPool2d(3, 2, 1) if stride == 2 else None
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.dw(self.pw1(x))
        if self.groups > 1:  # after the depthwise conv, where the authors' code shuffles (it commutes with it)
            y = channel_shuffle(y, self.shuffle)
        y = self.pw2(y)
        if self.pool is None:
            return self.act(x + y)
        return torch.cat((self.pool(x), self.act(y)), dim=1)


class ShuffleNetV1(nn.Module):
    def __init__(self, cfg: ShuffleNetV1Cfg, num_classes: int = 1000):
        super().__init__()
        self.stem = ConvNormAct(3, cfg.stem, 3, 2, act=nn.ReLU(inplace=True))
        self.pool = NonNegMaxPool()  # after the stem ReLU: zero padding, no -inf in the graph
        blocks, cin = [], cfg.stem
        for s, (reps, cout) in enumerate(zip(REPEATS, cfg.widths, strict=True)):
            for j in range(reps):
                blocks.append(ShuffleV1Unit(cin, cout, 2 if j == 0 else 1, cfg.groups, first=s == 0 and j == 0))
                cin = cout
        self.blocks = nn.Sequential(*blocks)
        self.classifier = nn.Linear(cin, num_classes, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(self.pool(self.stem(x)))
        return self.classifier(torch.flatten(x.mean((2, 3), keepdim=True), 1))


# megvii: first_conv.{0,1}, features.N.branch_main_1.{0,1,3,4}, .branch_main_2.{0,1}, classifier.0
_M1 = {0: "pw1.conv", 1: "pw1.bn", 3: "dw.conv", 4: "dw.bn"}
_M2 = {0: "pw2.conv", 1: "pw2.bn"}
MEGVII = Regex(
    to_ours_rules=((r"^first_conv\.0\.", "stem.conv."), (r"^first_conv\.1\.", "stem.bn."),
                   (r"^features\.", "blocks."), (r"^classifier\.0\.", "classifier."),
                   (r"\.branch_main_1\.(\d)\.", lambda m: f".{_M1[int(m[1])]}."),
                   (r"\.branch_main_2\.(\d)\.", lambda m: f".{_M2[int(m[1])]}.")),
    from_ours_rules=((r"^stem\.conv\.", "first_conv.0."), (r"^stem\.bn\.", "first_conv.1."),
                     (r"^blocks\.", "features."), (r"^classifier\.", "classifier.0."),
                     *((r"\." + re.escape(v) + r"\.", f".branch_main_1.{k}.") for k, v in _M1.items()),
                     *((r"\." + re.escape(v) + r"\.", f".branch_main_2.{k}.") for k, v in _M2.items())))
register_layout(FAMILY, KeyLayout("megvii", MEGVII, "megvii-model/ShuffleNet-Series ShuffleNetV1 first_conv / features.N",
                                  Conventions(1e-5, 0.1)))


def _spec(name: str, cfg: ShuffleNetV1Cfg) -> ModelSpec:
    return ModelSpec(
        name=name, family=FAMILY, input_size=(3, 224, 224),
        preprocessing=Preprocessing(resize=256, crop=224, mean=NO_NORM_MEAN, std=(1 / 255,) * 3, color="BGR",
                                    interpolation="bilinear"),
        published=cfg.published, reference=cfg.reference, sources=SOURCES, aliases=("shufflenet_v1_g3_x1_0",),
        notes="Published: paper Table 2 (140 MFLOPs = multiply-adds) and the authors' README (1.9M params, "
              "top-1 67.8 = 100 - 32.2). Reference params and MACs: megvii-model/ShuffleNet-Series@aa91feb "
              "ShuffleNetV1(model_size='1.0x', group=3) (torch FlopCounterMode / 2 at 224). Preprocessing as "
              "the authors' train.py evaluates: resize 256 (bilinear), centre crop 224, BGR, raw [0, 255] "
              "values (no mean/std).")


def build_shufflenetv1(cfg: ShuffleNetV1Cfg, num_classes: int = 1000) -> ShuffleNetV1:
    return ShuffleNetV1(cfg, num_classes)


for _name, _cfg in VARIANTS.items():
    register(_spec(_name, _cfg), partial(build_shufflenetv1, _cfg))
