"""RegNetX-400MF/800MF/1.6GF and RegNetY-400MF/800MF/1.6GF (baselines).

Paper: Radosavovic, Kosaraju, Girshick, He, Dollár, "Designing Network Design Spaces", CVPR 2020,
arXiv 2003.13678 (§3.3 quantized linear widths, Appendix: the model parameters). Reference implementation:
pytorch/vision ``torchvision/models/regnet.py`` (BSD-3-Clause; the layout of the official checkpoints). Written
from the paper, no code copied.

Widths: u_j = w_0 + w_a·j, s_j = round(log(u_j / w_0) / log w_m), w_j = round8(w_0 · w_m^s_j); blocks of one width
form a stage; the group width is capped at the width and the width rounded to a multiple of it. The block is
the X block (1×1 ``a`` → 3×3 grouped ``b`` (stride) → 1×1 ``c``, bottleneck ratio 1) with a 1×1 ``proj``
shortcut where the shape changes; Y adds squeeze-excitation on ``b``'s output, reduced to ¼ of the block input.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial

import torch
from torch import nn

from ..keymap import Regex
from ..layers.conv import ConvNormAct, make_divisible
from ..layers.se import SqueezeExcite
from ..registry import register
from ..specs import ModelSpec, Numbers, Preprocessing
from ..weights import Conventions, KeyLayout, register_layout

FAMILY = "regnet"
STEM = 32


@dataclass(frozen=True)
class RegNetCfg:
    depth: int
    w_0: int
    w_a: float
    w_m: float
    group_width: int
    se: bool
    alias: str
    published: Numbers
    reference: Numbers


VARIANTS: dict[str, RegNetCfg] = {
    "regnetx_004": RegNetCfg(22, 24, 24.48, 2.54, 16, False, "regnet_x_400mf",
                             Numbers(5_500_000, 410_000_000, 72.834), Numbers(5_495_976, 413_812_608)),
    "regnetx_008": RegNetCfg(16, 56, 35.73, 2.28, 16, False, "regnet_x_800mf",
                             Numbers(7_300_000, 800_000_000, 75.212), Numbers(7_259_656, 799_699_712)),
    "regnetx_016": RegNetCfg(18, 80, 34.01, 2.25, 24, False, "regnet_x_1_6gf",
                             Numbers(9_200_000, 1_600_000_000, 77.040), Numbers(9_190_136, 1_602_849_792)),
    "regnety_004": RegNetCfg(16, 48, 27.89, 2.09, 8, True, "regnet_y_400mf",
                             Numbers(4_300_000, 400_000_000, 74.046), Numbers(4_344_144, 401_842_848)),
    "regnety_008": RegNetCfg(14, 56, 38.84, 2.4, 16, True, "regnet_y_800mf",
                             Numbers(6_400_000, 830_000_000, 76.420), Numbers(6_432_512, 833_856_256)),
    "regnety_016": RegNetCfg(27, 48, 20.71, 2.65, 24, True, "regnet_y_1_6gf",
                             Numbers(11_200_000, 1_610_000_000, 77.950), Numbers(11_202_430, 1_612_076_160)),
}

SOURCES = (
    "paper: arXiv 2003.13678 (RegNet), §3.3 and the appendix model table",
    "TV pytorch/vision 0.29.1: torchvision/models/regnet.py (IMAGENET1K_V1 params / GFLOPS / acc@1 in its docs)",
)


def stages(cfg: RegNetCfg) -> list[tuple[int, int, int]]:
    """(width, depth, group width) per stage, from the quantized linear rule."""
    widths = []
    for j in range(cfg.depth):
        s = round(math.log((cfg.w_0 + cfg.w_a * j) / cfg.w_0) / math.log(cfg.w_m))
        widths.append(round(cfg.w_0 * cfg.w_m ** s / 8) * 8)
    out: list[tuple[int, int, int]] = []
    for w in widths:
        if out and out[-1][0] == w:
            out[-1] = (w, out[-1][1] + 1, out[-1][2])
        else:
            g = min(cfg.group_width, w)
            out.append((w, 1, g))
    return [(make_divisible(w, g), d, g) for w, d, g in out]


class XBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, group_width: int, se: bool):
        super().__init__()
        relu = partial(nn.ReLU, inplace=True)
        self.proj = ConvNormAct(cin, cout, 1, stride) if stride != 1 or cin != cout else None
        self.a = ConvNormAct(cin, cout, 1, act=relu())
        self.b = ConvNormAct(cout, cout, 3, stride, cout // group_width, act=relu())
        self.se = SqueezeExcite(cout, int(round(0.25 * cin))) if se else None
        self.c = ConvNormAct(cout, cout, 1)
        self.act = relu()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.b(self.a(x))
        if self.se is not None:
            y = self.se(y)
        return self.act((x if self.proj is None else self.proj(x)) + self.c(y))


class RegNet(nn.Module):
    def __init__(self, cfg: RegNetCfg, num_classes: int = 1000):
        super().__init__()
        self.stem = ConvNormAct(3, STEM, 3, 2, act=nn.ReLU(inplace=True))
        blocks, cin = [], STEM
        for w, d, g in stages(cfg):
            blocks.append(nn.Sequential(*(XBlock(cin if j == 0 else w, w, 2 if j == 0 else 1, g, cfg.se)
                                          for j in range(d))))
            cin = w
        self.stages = nn.Sequential(*blocks)
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stages(self.stem(x))
        return self.fc(torch.flatten(x.mean((2, 3), keepdim=True), 1))


# torchvision: stem.{0,1}, trunk_output.blockS.blockS-J.{proj.{0,1}, f.{a,b,c}.{0,1}, f.se.fc{1,2}}, fc
TORCHVISION = Regex(
    to_ours_rules=((r"^stem\.0\.", "stem.conv."), (r"^stem\.1\.", "stem.bn."),
                   (r"^trunk_output\.block(\d+)\.block\d+-(\d+)\.", lambda m: f"stages.{int(m[1]) - 1}.{m[2]}."),
                   (r"\.f\.([abc])\.0\.", r".\1.conv."), (r"\.f\.([abc])\.1\.", r".\1.bn."),
                   (r"\.proj\.0\.", ".proj.conv."), (r"\.proj\.1\.", ".proj.bn."),
                   (r"\.f\.se\.fc1\.", ".se.reduce."), (r"\.f\.se\.fc2\.", ".se.expand.")),
    from_ours_rules=((r"^stem\.conv\.", "stem.0."), (r"^stem\.bn\.", "stem.1."),
                     (r"^stages\.(\d+)\.(\d+)\.", lambda m: f"trunk_output.block{int(m[1]) + 1}."
                                                            f"block{int(m[1]) + 1}-{m[2]}."),
                     (r"\.([abc])\.conv\.", r".f.\1.0."), (r"\.([abc])\.bn\.", r".f.\1.1."),
                     (r"\.proj\.conv\.", ".proj.0."), (r"\.proj\.bn\.", ".proj.1."),
                     (r"\.se\.reduce\.", ".f.se.fc1."), (r"\.se\.expand\.", ".f.se.fc2.")))
register_layout(FAMILY, KeyLayout("torchvision", TORCHVISION, "torchvision stem / trunk_output.blockS.blockS-J / fc",
                                  Conventions(1e-5, 0.1)))


def _spec(name: str, cfg: RegNetCfg) -> ModelSpec:
    return ModelSpec(
        name=name, family=FAMILY, input_size=(3, 224, 224),
        preprocessing=Preprocessing(resize=256, crop=224, interpolation="bilinear"),
        published=cfg.published, reference=cfg.reference, sources=SOURCES, aliases=(cfg.alias,),
        notes="Published: torchvision IMAGENET1K_V1 (params, GFLOPS = GMACs, acc@1). Reference params and MACs: "
              "torchvision 0.29.1 (torch FlopCounterMode / 2 at 224).")


def build_regnet(cfg: RegNetCfg, num_classes: int = 1000) -> RegNet:
    return RegNet(cfg, num_classes)


for _name, _cfg in VARIANTS.items():
    register(_spec(_name, _cfg), partial(build_regnet, _cfg))
