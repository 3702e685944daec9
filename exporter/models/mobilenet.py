"""MobileNetV2 1.0 and MobileNetV3-Large/Small 1.0 (baselines).

Papers: Sandler et al., "MobileNetV2: Inverted Residuals and Linear Bottlenecks", CVPR 2018, arXiv 1801.04381;
Howard et al., "Searching for MobileNetV3", ICCV 2019, arXiv 1905.02244 (Table 3, final version).
Reference implementations: pytorch/vision ``torchvision/models/mobilenetv2.py`` / ``mobilenetv3.py``
(BSD-3-Clause; the layout of the official torchvision checkpoints) and huggingface/pytorch-image-models
``timm/models/efficientnet.py`` / ``mobilenetv3.py`` (Apache-2.0). Written from the papers, no code copied.

Ours: ``stem`` (ConvNormAct) → ``blocks.{i}`` (InvertedResidual, flat) → ``last`` (1×1 ConvNormAct) →
global average pool → [``pre_logits`` Linear + act, MNv3 only] → dropout → ``classifier``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import torch
from torch import nn

from ..keymap import CONV1X1, Row, Tables
from ..layers.conv import ConvNormAct
from ..layers.inverted_residual import InvertedResidual
from ..layers.se import make_act
from ..registry import register
from ..specs import ModelSpec, Numbers, Preprocessing
from ..weights import Conventions, KeyLayout, register_layout
from ._ref_keys import block_rows, cna_rows


@dataclass(frozen=True)
class Block:
    """One row of the spec tables: depthwise kernel, hidden width, output, stride, act, SE reduced width."""

    k: int
    hidden: int
    out: int
    stride: int
    act: str
    se: int | None = None


@dataclass(frozen=True)
class MobileNetCfg:
    family: str
    alias: str
    stem: int
    stem_act: str
    stages: tuple[tuple[Block, ...], ...]  # grouped as timm's ``blocks.{stage}.{j}``
    last: int  # 1×1 conv before pooling (with BN)
    head: int | None  # MNv3: pooled 1×1 layer with bias, no BN (``pre_logits``); MNv2: none
    act: str  # of the last conv and the head
    published: Numbers
    reference: Numbers
    preprocessing: Preprocessing
    dropout: float = 0.2
    notes: str = ""


def _v2_stage(cin: int, t: int, c: int, n: int, s: int) -> tuple[Block, ...]:
    return tuple(Block(3, (cin if i == 0 else c) * t, c, s if i == 0 else 1, "relu6") for i in range(n))


# MobileNetV2 (t, c, n, s) from the paper's Table 2; the input width of each stage is the previous c.
_V2_TABLE = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
             (6, 320, 1, 1))
_V2_STAGES = tuple(_v2_stage(cin, *row) for cin, row in zip((32,) + tuple(r[1] for r in _V2_TABLE), _V2_TABLE,
                                                             strict=False))

B = Block
_V3_LARGE = (
    (B(3, 16, 16, 1, "relu"),),
    (B(3, 64, 24, 2, "relu"), B(3, 72, 24, 1, "relu")),
    (B(5, 72, 40, 2, "relu", 24), B(5, 120, 40, 1, "relu", 32), B(5, 120, 40, 1, "relu", 32)),
    (B(3, 240, 80, 2, "hswish"), B(3, 200, 80, 1, "hswish"), B(3, 184, 80, 1, "hswish"),
     B(3, 184, 80, 1, "hswish")),
    (B(3, 480, 112, 1, "hswish", 120), B(3, 672, 112, 1, "hswish", 168)),
    (B(5, 672, 160, 2, "hswish", 168), B(5, 960, 160, 1, "hswish", 240), B(5, 960, 160, 1, "hswish", 240)),
)
_V3_SMALL = (
    (B(3, 16, 16, 2, "relu", 8),),
    (B(3, 72, 24, 2, "relu"), B(3, 88, 24, 1, "relu")),
    (B(5, 96, 40, 2, "hswish", 24), B(5, 240, 40, 1, "hswish", 64), B(5, 240, 40, 1, "hswish", 64)),
    (B(5, 120, 48, 1, "hswish", 32), B(5, 144, 48, 1, "hswish", 40)),
    (B(5, 288, 96, 2, "hswish", 72), B(5, 576, 96, 1, "hswish", 144), B(5, 576, 96, 1, "hswish", 144)),
)

_TV_PRE = Preprocessing(resize=256, crop=224, interpolation="bilinear")  # torchvision IMAGENET1K_V1 eval
_TIMM_PRE = Preprocessing(resize=256, crop=224, interpolation="bicubic")  # timm ra/lamb_in1k, crop_pct 0.875
_V3_NOTE = ("Built with BN eps 1e-5 as timm; a torchvision-layout checkpoint switches the model to torchvision's "
            "BN eps 1e-3 / momentum 0.01 when it loads (the layout's conventions; keys and shapes are the same). "
            "No public MNv3 weights are available offline.")

VARIANTS: dict[str, MobileNetCfg] = {
    "mobilenetv2_100": MobileNetCfg(
        "mobilenetv2", "mobilenet_v2", 32, "relu6", _V2_STAGES, 1280, None, "relu6",
        published=Numbers(3_400_000, 300_000_000, 72.0), reference=Numbers(3_504_872, 300_774_272),
        preprocessing=_TV_PRE,
        notes="Default weights: the official torchvision IMAGENET1K_V1 checkpoint (71.878 top-1), "
              "preprocessed as torchvision: resize 256 (bilinear) → centre crop 224, ImageNet mean/std."),
    "mobilenetv3_large_100": MobileNetCfg(
        "mobilenetv3", "mobilenet_v3_large", 16, "hswish", _V3_LARGE, 960, 1280, "hswish",
        published=Numbers(5_400_000, 219_000_000, 75.2), reference=Numbers(5_483_032, 216_589_760),
        preprocessing=_TIMM_PRE, notes=_V3_NOTE),
    "mobilenetv3_small_100": MobileNetCfg(
        "mobilenetv3", "mobilenet_v3_small", 16, "hswish", _V3_SMALL, 576, 1024, "hswish",
        published=Numbers(2_500_000, 56_000_000, 67.4), reference=Numbers(2_542_856, 56_510_400),
        preprocessing=_TIMM_PRE, notes=_V3_NOTE),
}

SOURCES = (
    "paper: arXiv 1801.04381 (MobileNetV2), arXiv 1905.02244 (MobileNetV3, Table 3 final)",
    "TV pytorch/vision: torchvision/models/mobilenetv2.py, mobilenetv3.py",
    "TIMM huggingface/pytorch-image-models@aa4b5850c1543fa488abf260f18390eda46cf85d: "
    "timm/models/efficientnet.py, timm/models/mobilenetv3.py",
)


class MobileNet(nn.Module):
    def __init__(self, cfg: MobileNetCfg, num_classes: int = 1000):
        super().__init__()
        self.stem = ConvNormAct(3, cfg.stem, 3, 2, act=make_act(cfg.stem_act))
        blocks, cin = [], cfg.stem
        for b in (b for stage in cfg.stages for b in stage):
            blocks.append(InvertedResidual(cin, b.out, b.hidden, b.k, b.stride, b.act, se_channels=b.se,
                                           gate="hsigmoid"))
            cin = b.out
        self.blocks = nn.Sequential(*blocks)
        self.last = ConvNormAct(cin, cfg.last, 1, act=make_act(cfg.act))
        features = cfg.last
        if cfg.head is not None:
            self.pre_logits = nn.Sequential(nn.Linear(cfg.last, cfg.head), make_act(cfg.act))
            features = cfg.head
        else:
            self.pre_logits = nn.Identity()
        self.dropout = nn.Dropout(cfg.dropout)
        self.classifier = nn.Linear(features, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.last(self.blocks(self.stem(x)))
        x = torch.flatten(x.mean((2, 3), keepdim=True), 1)
        return self.classifier(self.dropout(self.pre_logits(x)))


# --------------------------------------------------------------------------- reference key layouts

def _flat(cfg: MobileNetCfg) -> list[tuple[int, int, int, Block, int]]:
    """(flat index, stage, index in stage, block, block input channels) for every block."""
    out, cin = [], cfg.stem
    for s, stage in enumerate(cfg.stages):
        for j, b in enumerate(stage):
            out.append((len(out), s, j, b, cin))
            cin = b.out
    return out


def timm_rows(cfg: MobileNetCfg) -> list[Row]:
    rows = cna_rows("stem", "conv_stem", "bn1")
    for i, s, j, b, cin in _flat(cfg):
        rows += block_rows("timm", f"blocks.{i}", f"blocks.{s}.{j}", has_expand=b.hidden != cin,
                           has_se=b.se is not None)
    if cfg.head is None:  # MNv2: conv_head + bn2 before pooling
        rows += cna_rows("last", "conv_head", "bn2")
    else:  # MNv3: the last 1×1 conv is a ConvBnAct stage; conv_head is the pooled 1×1 conv with bias
        n = len(cfg.stages)
        rows += cna_rows("last", f"blocks.{n}.0.conv", f"blocks.{n}.0.bn1")
        rows.append(("pre_logits.0", "conv_head", CONV1X1))
    return rows + [("classifier", "classifier", None)]


def torchvision_rows(cfg: MobileNetCfg) -> list[Row]:
    style = "torchvision_v2" if cfg.head is None else "torchvision_v3"
    rows = cna_rows("stem", "features.0.0", "features.0.1")
    flat = _flat(cfg)
    for i, _, _, b, cin in flat:
        rows += block_rows(style, f"blocks.{i}", f"features.{i + 1}", has_expand=b.hidden != cin,
                           has_se=b.se is not None)
    n = len(flat) + 1
    rows += cna_rows("last", f"features.{n}.0", f"features.{n}.1")
    if cfg.head is None:
        return rows + [("classifier", "classifier.1", None)]
    return rows + [("pre_logits.0", "classifier.0", None), ("classifier", "classifier.3", None)]


# Conventions keys cannot show (read from the reference code): torchvision builds MobileNetV3 with
# BatchNorm2d(eps=1e-3, momentum=0.01) and MobileNetV2 with the defaults (1e-5, 0.1); timm's mobilenetv2_100 /
# mobilenetv3_*_100 use the defaults, symmetric padding. timm's tf_mobilenetv3_* (eps 1e-3, TF-SAME padding)
# share the timm keys but not these numerics: a checkpoint that records that arch is refused (a bare file cannot
# tell and loads as timm's PyTorch-trained variant).
_TF_MNV3 = ((r"tf_mobilenetv3_.*", "timm's tf_mobilenetv3_* use BatchNorm eps 1e-3 and TF-SAME padding, our "
                                   "MobileNetV3 timm's mobilenetv3_* numerics (eps 1e-5, symmetric padding)"),)
_CONVENTIONS = {("mobilenetv3", "torchvision"): Conventions(1e-3, 0.01, "torchvision MobileNetV3"),
                ("mobilenetv3", "timm"): Conventions(1e-5, 0.1, other_variants=_TF_MNV3)}

for _fam in ("mobilenetv2", "mobilenetv3"):
    for _lname, _fn, _desc in (
            ("torchvision", torchvision_rows, "torchvision features.N / classifier.N (IMAGENET1K checkpoints)"),
            ("timm", timm_rows, "timm conv_stem / blocks.S.J / conv_head / classifier")):
        register_layout(_fam, KeyLayout(_lname, Tables([_fn(c) for c in VARIANTS.values() if c.family == _fam]), _desc,
                                        _CONVENTIONS.get((_fam, _lname), Conventions(1e-5, 0.1))))


def _spec(name: str, cfg: MobileNetCfg) -> ModelSpec:
    weights = "mobilenet_v2-b0353104.pth" if cfg.family == "mobilenetv2" else None
    return ModelSpec(name=name, family=cfg.family, input_size=(3, 224, 224), preprocessing=cfg.preprocessing,
                     published=cfg.published, reference=cfg.reference, sources=SOURCES, aliases=(cfg.alias,),
                     default_weights=weights, notes=cfg.notes)


def build_mobilenet(cfg: MobileNetCfg, num_classes: int = 1000) -> MobileNet:
    return MobileNet(cfg, num_classes)


for _name, _cfg in VARIANTS.items():
    register(_spec(_name, _cfg), partial(build_mobilenet, _cfg))
