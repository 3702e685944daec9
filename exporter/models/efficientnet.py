"""EfficientNet-B0–B3 and EfficientNetV2-B0 / -S.

Papers: Tan & Le, "EfficientNet: Rethinking Model Scaling for Convolutional Neural Networks", ICML 2019,
arXiv 1905.11946 (Table 1 base network, compound scaling); Tan & Le, "EfficientNetV2: Smaller Models and Faster
Training", ICML 2021, arXiv 2104.00298 (Table 4 V2-S; Fused-MBConv). Reference implementations: pytorch/vision
``torchvision/models/efficientnet.py`` (BSD-3-Clause; ``efficientnet_b0..b3``, ``efficientnet_v2_s``) and timm
``timm/models/efficientnet.py`` / ``_efficientnet_builder.py`` (Apache-2.0; ``efficientnet_b0..b3``,
``tf_efficientnetv2_b0``). Written from the papers, no code copied.

MBConv: 1×1 expand → k×k depthwise → squeeze-excitation (reduced to ¼ of the block *input*, SiLU, sigmoid gate)
→ 1×1 project, SiLU throughout (the InvertedResidual layer). V2's early stages are Fused-MBConvs.
Ours: ``stem`` → ``blocks.{i}`` (flat) → ``last`` (1×1 ConvNormAct + SiLU) → pool → dropout → ``classifier``.

Numerics: B0–B3 as both references (BN eps 1e-5, symmetric padding). V2-S as torchvision (BN eps 1e-3,
symmetric padding); V2-B0 as timm's ``tf_efficientnetv2_b0`` port of the official TF weights (BN eps 1e-3,
TF-SAME padding), its only public reference. timm's ``tf_efficientnetv2_s`` has torchvision V2-S's shapes but
TF-SAME padding: its keys are not accepted for our V2-S (the timm layout only has V2-B0's table).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial

import torch
from torch import nn

from ..keymap import Row, Tables
from ..layers.conv import make_divisible
from ..layers.fused_mbconv import FusedMBConv
from ..layers.inverted_residual import InvertedResidual, conv_norm_act
from ..registry import register
from ..specs import ModelSpec, Numbers, Preprocessing
from ..weights import Conventions, KeyLayout, register_layout
from ._ref_keys import block_rows, cna_rows


@dataclass(frozen=True)
class Stage:
    kind: str  # "mb" (MBConv with SE) or "fused" (Fused-MBConv, no SE)
    expand: int
    kernel: int
    stride: int
    repeats: int
    out: int


# EfficientNet-B0 (paper Table 1) and the V2 tables (V2-S: paper Table 4; V2-B0: the official TF code's
# efficientnetv2-b0 block strings, as timm's tf_efficientnetv2_b0)
B0_STAGES = (Stage("mb", 1, 3, 1, 1, 16), Stage("mb", 6, 3, 2, 2, 24), Stage("mb", 6, 5, 2, 2, 40),
             Stage("mb", 6, 3, 2, 3, 80), Stage("mb", 6, 5, 1, 3, 112), Stage("mb", 6, 5, 2, 4, 192),
             Stage("mb", 6, 3, 1, 1, 320))
V2_S_STAGES = (Stage("fused", 1, 3, 1, 2, 24), Stage("fused", 4, 3, 2, 4, 48), Stage("fused", 4, 3, 2, 4, 64),
               Stage("mb", 4, 3, 2, 6, 128), Stage("mb", 6, 3, 1, 9, 160), Stage("mb", 6, 3, 2, 15, 256))
V2_B0_STAGES = (Stage("fused", 1, 3, 1, 1, 16), Stage("fused", 4, 3, 2, 2, 32), Stage("fused", 4, 3, 2, 2, 48),
                Stage("mb", 4, 3, 2, 3, 96), Stage("mb", 6, 3, 1, 5, 112), Stage("mb", 6, 3, 2, 8, 192))


@dataclass(frozen=True)
class EffNetCfg:
    family: str
    stages: tuple[Stage, ...]
    width: float
    depth: float
    size: int
    dropout: float
    stem: int
    padding: str
    bn_eps: float
    alias: str
    published: Numbers
    reference: Numbers


def _b(width, depth, size, dropout, alias, published, reference) -> EffNetCfg:
    return EffNetCfg("efficientnet", B0_STAGES, width, depth, size, dropout, make_divisible(32 * width),
                     "symmetric", 1e-5, alias, published, reference)


VARIANTS: dict[str, EffNetCfg] = {
    "efficientnet_b0": _b(1.0, 1.0, 224, 0.2, "efficientnetb0", Numbers(5_300_000, 390_000_000, 77.1),
                          Numbers(5_288_548, 385_814_752)),
    "efficientnet_b1": _b(1.0, 1.1, 240, 0.2, "efficientnetb1", Numbers(7_800_000, 700_000_000, 79.1),
                          Numbers(7_794_184, 686_802_832)),
    "efficientnet_b2": _b(1.1, 1.2, 260, 0.3, "efficientnetb2", Numbers(9_200_000, 1_000_000_000, 80.1),
                          Numbers(9_109_994, 993_561_872)),
    "efficientnet_b3": _b(1.2, 1.4, 300, 0.3, "efficientnetb3", Numbers(12_000_000, 1_800_000_000, 81.6),
                          Numbers(12_233_232, 1_827_141_392)),
    "efficientnetv2_b0": EffNetCfg("efficientnetv2", V2_B0_STAGES, 1.0, 1.0, 224, 0.2, 32, "tf_same", 1e-3,
                                   "tf_efficientnetv2_b0", Numbers(7_100_000, 720_000_000, 78.7),
                                   Numbers(7_139_704, 718_086_176)),
    "efficientnetv2_s": EffNetCfg("efficientnetv2", V2_S_STAGES, 1.0, 1.0, 384, 0.2, 24, "symmetric", 1e-3,
                                  "efficientnet_v2_s", Numbers(22_000_000, 8_800_000_000, 83.9),
                                  Numbers(21_458_488, 8_365_617_152)),
}
HEAD = 1280

SOURCES = (
    "paper: arXiv 1905.11946 (EfficientNet, Tables 1-2), arXiv 2104.00298 (EfficientNetV2, Tables 4 and 7)",
    "TV pytorch/vision 0.29.1: torchvision/models/efficientnet.py",
    "TIMM huggingface/pytorch-image-models 1.0.31: timm/models/efficientnet.py, _efficientnet_builder.py",
)


def block_rows_of(cfg: EffNetCfg) -> list[list[tuple[str, int, int, int, int, int]]]:
    """Per stage, per block: (kind, input channels, expand ratio, kernel, stride, output channels)."""
    stages, cin = [], cfg.stem
    for st in cfg.stages:
        cout = make_divisible(st.out * cfg.width)
        rows = []
        for j in range(math.ceil(st.repeats * cfg.depth)):
            rows.append((st.kind, cin, st.expand, st.kernel, st.stride if j == 0 else 1, cout))
            cin = cout
        stages.append(rows)
    return stages


def _block(cfg: EffNetCfg, kind: str, cin: int, e: int, k: int, s: int, cout: int) -> nn.Module:
    kw = {"padding": cfg.padding, "bn_eps": cfg.bn_eps}
    if kind == "fused":
        return FusedMBConv(cin, cout, e, k, s, "silu", **kw)
    return InvertedResidual(cin, cout, cin * e, k, s, "silu", se_channels=max(1, cin // 4), se_act="silu",
                            gate="sigmoid", **kw)


class EfficientNet(nn.Module):
    def __init__(self, cfg: EffNetCfg, num_classes: int = 1000):
        super().__init__()
        kw = {"padding": cfg.padding, "bn_eps": cfg.bn_eps}
        self.stem = conv_norm_act(3, cfg.stem, 3, 2, 1, "silu", **kw)
        self.blocks = nn.Sequential(*(_block(cfg, *row) for stage in block_rows_of(cfg) for row in stage))
        head = make_divisible(HEAD * cfg.width)
        self.last = conv_norm_act(self.blocks[-1].out_ch, head, 1, 1, 1, "silu", **kw)
        self.dropout = nn.Dropout(cfg.dropout)
        self.classifier = nn.Linear(head, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.last(self.blocks(self.stem(x)))
        x = torch.flatten(x.mean((2, 3), keepdim=True), 1)
        return self.classifier(self.dropout(x))


# --------------------------------------------------------------------------- reference key layouts

def _fused_rows(style: str, ours: str, theirs: str, expand: int) -> list[Row]:
    if style == "torchvision":  # FusedMBConv block.0 (conv, bn) [, block.1 (conv, bn)]
        rows = cna_rows(f"{ours}.fused", f"{theirs}.block.0.0", f"{theirs}.block.0.1")
        return rows + (cna_rows(f"{ours}.project", f"{theirs}.block.1.0", f"{theirs}.block.1.1") if expand > 1
                       else [])
    if expand == 1:  # timm ConvBnAct
        return cna_rows(f"{ours}.fused", f"{theirs}.conv", f"{theirs}.bn1")
    return (cna_rows(f"{ours}.fused", f"{theirs}.conv_exp", f"{theirs}.bn1")  # timm EdgeResidual
            + cna_rows(f"{ours}.project", f"{theirs}.conv_pwl", f"{theirs}.bn2"))


def layout_rows(cfg: EffNetCfg, style: str) -> list[Row]:
    """torchvision: features.0 / features.{s+1}.{j}.block.N / features.{last} / classifier.1; timm: conv_stem /
    blocks.S.J / conv_head / classifier."""
    tv = style == "torchvision"
    rows = cna_rows("stem", "features.0.0", "features.0.1") if tv else cna_rows("stem", "conv_stem", "bn1")
    i = 0
    stages = block_rows_of(cfg)
    for s, stage in enumerate(stages):
        for j, (kind, _cin, e, *_rest) in enumerate(stage):
            theirs = f"features.{s + 1}.{j}" if tv else f"blocks.{s}.{j}"
            if kind == "fused":
                rows += _fused_rows(style, f"blocks.{i}", theirs, e)
            else:
                rows += block_rows("torchvision_v3" if tv else "timm", f"blocks.{i}", theirs, has_expand=e != 1,
                                   has_se=True)
            i += 1
    n = len(stages) + 1
    rows += cna_rows("last", f"features.{n}.0", f"features.{n}.1") if tv else cna_rows("last", "conv_head", "bn2")
    return rows + [("classifier", "classifier.1" if tv else "classifier", None)]


# (family, layout) -> the variants whose numerics that reference computes, and its conventions
_LAYOUTS = {
    ("efficientnet", "torchvision"): (("efficientnet_b0", "efficientnet_b1", "efficientnet_b2", "efficientnet_b3"),
                                      "torchvision efficientnet_b* features.N / classifier.1"),
    ("efficientnet", "timm"): (("efficientnet_b0", "efficientnet_b1", "efficientnet_b2", "efficientnet_b3"),
                               "timm efficientnet_b* conv_stem / blocks.S.J / conv_head / classifier"),
    ("efficientnetv2", "torchvision"): (("efficientnetv2_s",), "torchvision efficientnet_v2_s features.N"),
    ("efficientnetv2", "timm"): (("efficientnetv2_b0",), "timm tf_efficientnetv2_b0 conv_stem / blocks.S.J"),
}
for (_fam, _lname), (_names, _desc) in _LAYOUTS.items():
    _eps = VARIANTS[_names[0]].bn_eps
    register_layout(_fam, KeyLayout(_lname, Tables([layout_rows(VARIANTS[n], _lname) for n in _names]), _desc,
                                    Conventions(_eps, None)))


def _spec(name: str, cfg: EffNetCfg) -> ModelSpec:
    pre = Preprocessing(resize=int(cfg.size / 0.875), crop=cfg.size, interpolation="bicubic")
    return ModelSpec(
        name=name, family=cfg.family, input_size=(3, cfg.size, cfg.size), preprocessing=pre,
        published=cfg.published, reference=cfg.reference, sources=SOURCES, aliases=(cfg.alias,),
        notes="Published: the papers (params, FLOPs = multiply-adds, top-1). Reference params and MACs: "
              + ("timm 1.0.31 tf_efficientnetv2_b0" if name == "efficientnetv2_b0" else "torchvision 0.29.1")
              + " (torch FlopCounterMode / 2 at this input size). Preprocessing: crop_pct 0.875, bicubic.")


def build_efficientnet(cfg: EffNetCfg, num_classes: int = 1000) -> EfficientNet:
    return EfficientNet(cfg, num_classes)


for _name, _cfg in VARIANTS.items():
    register(_spec(_name, _cfg), partial(build_efficientnet, _cfg))
