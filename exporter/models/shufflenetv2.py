"""ShuffleNetV2 0.5× / 1.0× / 1.5× / 2.0× (baselines).

Paper: Ma, Zhang, Zheng, Sun, "ShuffleNet V2: Practical Guidelines for Efficient CNN Architecture Design",
ECCV 2018, arXiv 1807.11164 (Table 5). Reference implementation: pytorch/vision
``torchvision/models/shufflenetv2.py`` (BSD-3-Clause; the layout of the official checkpoints). Written from the
paper, no code copied.

Ours: ``stem`` (3×3/2 ConvNormAct + ReLU) → 3×3/2 max pool → ``stages.{s}.{j}`` (``ShuffleUnit``: channel split,
``branch2`` = 1×1 → depthwise 3×3 → 1×1, concat with the untouched half or, when strided, with ``branch1`` =
depthwise 3×3/2 → 1×1; channel shuffle of 2 groups) → ``last`` (1×1 ConvNormAct + ReLU) → pool → ``fc``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import torch
from torch import nn

from ..keymap import Regex
from ..layers.conv import ConvNormAct
from ..layers.shuffle import NonNegMaxPool, channel_shuffle
from ..registry import register
from ..specs import ModelSpec, Numbers, Preprocessing
from ..weights import Conventions, KeyLayout, register_layout

FAMILY = "shufflenetv2"
REPEATS = (4, 8, 4)


@dataclass(frozen=True)
class ShuffleNetV2Cfg:
    widths: tuple[int, int, int, int]  # stage 2, 3, 4 outputs and the last 1×1 conv
    alias: str
    published: Numbers
    reference: Numbers


VARIANTS: dict[str, ShuffleNetV2Cfg] = {
    "shufflenetv2_050": ShuffleNetV2Cfg((48, 96, 192, 1024), "shufflenet_v2_x0_5",
                                        Numbers(1_400_000, 41_000_000, 60.552), Numbers(1_366_792, 40_476_448)),
    "shufflenetv2_100": ShuffleNetV2Cfg((116, 232, 464, 1024), "shufflenet_v2_x1_0",
                                        Numbers(2_300_000, 146_000_000, 69.362), Numbers(2_278_604, 144_907_992)),
    "shufflenetv2_150": ShuffleNetV2Cfg((176, 352, 704, 1024), "shufflenet_v2_x1_5",
                                        Numbers(3_500_000, 299_000_000, 72.996), Numbers(3_503_624, 295_759_392)),
    "shufflenetv2_200": ShuffleNetV2Cfg((244, 488, 976, 2048), "shufflenet_v2_x2_0",
                                        Numbers(7_400_000, 591_000_000, 76.230), Numbers(7_393_996, 583_253_464)),
}

SOURCES = (
    "paper: arXiv 1807.11164 (ShuffleNet V2), Table 5",
    "TV pytorch/vision 0.29.1: torchvision/models/shufflenetv2.py (IMAGENET1K_V1 acc@1 in its docs)",
)


def _relu() -> nn.Module:
    return nn.ReLU(inplace=True)


class Branch(nn.Module):
    """[1×1 ``pw1`` + ReLU] → depthwise 3×3 ``dw`` (no act) → [1×1 ``pw2`` + ReLU]; branch1 has no pw1."""

    def __init__(self, cin: int, cout: int, stride: int, first_pw: bool):
        super().__init__()
        mid = cout if first_pw else cin
        self.pw1 = ConvNormAct(cin, mid, 1, act=_relu()) if first_pw else None
        self.dw = ConvNormAct(mid, mid, 3, stride, mid)
        self.pw2 = ConvNormAct(mid, cout, 1, act=_relu())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pw2(self.dw(x if self.pw1 is None else self.pw1(x)))


class ShuffleUnit(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        half = cout // 2
        self.stride = stride
        self.branch1 = Branch(cin, half, stride, first_pw=False) if stride > 1 else None
        self.branch2 = Branch(cin if stride > 1 else half, half, stride, first_pw=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.branch1 is None:
            a, b = x.chunk(2, dim=1)
            out = torch.cat((a, self.branch2(b)), dim=1)
        else:
            out = torch.cat((self.branch1(x), self.branch2(x)), dim=1)
        return channel_shuffle(out, 2)


class ShuffleNetV2(nn.Module):
    def __init__(self, cfg: ShuffleNetV2Cfg, num_classes: int = 1000):
        super().__init__()
        self.stem = ConvNormAct(3, 24, 3, 2, act=_relu())
        self.pool = NonNegMaxPool()  # after the stem ReLU: zero padding, no -inf in the graph
        stages, cin = [], 24
        for reps, cout in zip(REPEATS, cfg.widths[:3], strict=True):
            stages.append(nn.Sequential(*(ShuffleUnit(cin if j == 0 else cout, cout, 2 if j == 0 else 1)
                                          for j in range(reps))))
            cin = cout
        self.stages = nn.Sequential(*stages)
        self.last = ConvNormAct(cin, cfg.widths[3], 1, act=_relu())
        self.fc = nn.Linear(cfg.widths[3], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.last(self.stages(self.pool(self.stem(x))))
        return self.fc(torch.flatten(x.mean((2, 3), keepdim=True), 1))


# torchvision: conv1.{0,1}, stage{2,3,4}.J.branch1.{0..3}, .branch2.{0,1,3,4,5,6}, conv5.{0,1}, fc
_B1 = ("dw.conv", "dw.bn", "pw2.conv", "pw2.bn")
_B2 = {0: "pw1.conv", 1: "pw1.bn", 3: "dw.conv", 4: "dw.bn", 5: "pw2.conv", 6: "pw2.bn"}
TORCHVISION = Regex(
    to_ours_rules=((r"^conv1\.0\.", "stem.conv."), (r"^conv1\.1\.", "stem.bn."), (r"^conv5\.0\.", "last.conv."),
                   (r"^conv5\.1\.", "last.bn."), (r"^stage(\d)\.", lambda m: f"stages.{int(m[1]) - 2}."),
                   (r"\.branch1\.(\d)\.", lambda m: f".branch1.{_B1[int(m[1])]}."),
                   (r"\.branch2\.(\d)\.", lambda m: f".branch2.{_B2[int(m[1])]}.")),
    from_ours_rules=((r"^stem\.conv\.", "conv1.0."), (r"^stem\.bn\.", "conv1.1."), (r"^last\.conv\.", "conv5.0."),
                     (r"^last\.bn\.", "conv5.1."), (r"^stages\.(\d)\.", lambda m: f"stage{int(m[1]) + 2}."),
                     (r"\.branch1\.(\w+\.\w+)\.", lambda m: f".branch1.{_B1.index(m[1])}."),
                     (r"\.branch2\.(\w+\.\w+)\.",
                      lambda m: f".branch2.{next(k for k, v in _B2.items() if v == m[1])}.")))
register_layout(FAMILY, KeyLayout("torchvision", TORCHVISION, "torchvision conv1 / stageN.J.branch{1,2}.K / conv5 / fc",
                                  Conventions(1e-5, 0.1)))


def _spec(name: str, cfg: ShuffleNetV2Cfg) -> ModelSpec:
    return ModelSpec(
        name=name, family=FAMILY, input_size=(3, 224, 224),
        preprocessing=Preprocessing(resize=256, crop=224, interpolation="bilinear"),
        published=cfg.published, reference=cfg.reference, sources=SOURCES, aliases=(cfg.alias,),
        notes="Published: params and MACs of the paper's Table 5 (FLOPs there are multiply-adds), top-1 of the "
              "torchvision IMAGENET1K_V1 checkpoints. Reference params and MACs: torchvision 0.29.1.")


def build_shufflenetv2(cfg: ShuffleNetV2Cfg, num_classes: int = 1000) -> ShuffleNetV2:
    return ShuffleNetV2(cfg, num_classes)


for _name, _cfg in VARIANTS.items():
    register(_spec(_name, _cfg), partial(build_shufflenetv2, _cfg))
