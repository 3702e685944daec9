"""RepVGG A0–A2, B0–B3 and the group-wise B1g2/B1g4/B2g2/B2g4/B3g2/B3g4.

Paper: Ding, Zhang, Ma, Han, Ding, Sun, "RepVGG: Making VGG-style ConvNets Great Again", CVPR 2021,
arXiv 2101.03697. Reference implementation: DingXiaoH/RepVGG (``repvgg.py``, MIT licence); timm ``byobnet.py``
(Apache-2.0) re-implements it. Written from the paper, no code copied.

Train form: five stages of 3×3 ``RepBranchBlock``s (3×3 branch + 1×1 branch + BN identity where shapes allow),
each stage opening with a stride-2 block; in the gN variants layers 2, 4, …, 26 (counted after the stem) are
grouped convs in all branches. Deploy form: a plain chain of 3×3 conv (+bias) → ReLU, then pool + Linear.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

from torch import nn

from ..keymap import Regex, ren, segment_renames
from ..layers.mobileone_block import PlainRepNet, RepBranchBlock
from ..registry import register
from ..specs import ModelSpec, Numbers, Preprocessing
from ..weights import KeyLayout, register_layout
from ._ref_keys import STAGES

FAMILY = "repvgg"
GROUPED_LAYERS = frozenset(range(2, 27, 2))  # REPVGG optional_groupwise_layers, 1-based after the stem

SOURCES = (
    "paper: arXiv 2101.03697 (RepVGG), Tables 4-5",
    "REPVGG DingXiaoH/RepVGG@eae7c5204001eaf195bbe2ee72fb6a37855cce33: repvgg.py, tools/convert.py, README.md",
    "TIMM huggingface/pytorch-image-models@aa4b5850c1543fa488abf260f18390eda46cf85d: timm/models/byobnet.py",
)
A_DEPTHS = (2, 4, 14, 1)
B_DEPTHS = (4, 6, 16, 1)


@dataclass(frozen=True)
class RepVGGCfg:
    depths: tuple[int, int, int, int]  # blocks of stages 1..4 (stage 0 is the single stem block)
    a: float  # width multiplier of stages 1..3
    b: float  # width multiplier of stage 4
    groups: int = 1  # groups of the layers in GROUPED_LAYERS
    published: Numbers = Numbers()
    reference: Numbers = Numbers()  # measured on REPVGG, deploy form
    timm: bool = True  # timm ships this variant (repvgg_*.rvgg_in1k)
    notes: str = ""


def _m(x: float) -> int:
    return round(x * 1e6)


VARIANTS: dict[str, RepVGGCfg] = {
    "repvgg_a0": RepVGGCfg(A_DEPTHS, 0.75, 2.5, published=Numbers(_m(8.30), _m(1400), 72.41),
                           reference=Numbers(8_309_384, _m(1361.5))),
    "repvgg_a1": RepVGGCfg(A_DEPTHS, 1.0, 2.5, published=Numbers(_m(12.78), _m(2400), 74.46),
                           reference=Numbers(12_789_864, _m(2364.0))),
    "repvgg_a2": RepVGGCfg(A_DEPTHS, 1.5, 2.75, published=Numbers(_m(25.49), _m(5100), 76.48),
                           reference=Numbers(25_499_944, _m(5117.0))),
    "repvgg_b0": RepVGGCfg(B_DEPTHS, 1.0, 2.5, published=Numbers(_m(14.33), _m(3100), 75.14),
                           reference=Numbers(14_339_048, _m(3057.6))),
    "repvgg_b1": RepVGGCfg(B_DEPTHS, 2.0, 4.0, published=Numbers(_m(51.82), _m(11800), 78.37),
                           reference=Numbers(51_829_480, _m(11815.5))),
    "repvgg_b1g2": RepVGGCfg(B_DEPTHS, 2.0, 4.0, groups=2, timm=False,
                             published=Numbers(_m(41.36), _m(8800), 77.78),
                             reference=Numbers(41_360_104, _m(8809.7))),
    "repvgg_b1g4": RepVGGCfg(B_DEPTHS, 2.0, 4.0, groups=4, published=Numbers(_m(36.12), _m(7300), 77.58),
                             reference=Numbers(36_125_416, _m(7306.9))),
    "repvgg_b2": RepVGGCfg(B_DEPTHS, 2.5, 5.0, published=Numbers(_m(80.31), _m(18400), 78.78),
                           reference=Numbers(80_315_112, _m(18376.6))),
    "repvgg_b2g2": RepVGGCfg(B_DEPTHS, 2.5, 5.0, groups=2, timm=False, reference=Numbers(63_956_712, _m(13680.1)),
                             notes="Defined in REPVGG code but absent from the paper tables and README: "
                                   "no published params/MACs/top-1."),
    "repvgg_b2g4": RepVGGCfg(B_DEPTHS, 2.5, 5.0, groups=4, published=Numbers(_m(55.77), _m(11300), 78.50),
                             reference=Numbers(55_777_512, _m(11331.9)),
                             notes="top-1 78.50 after 120 epochs; 79.38 with the 200-epoch recipe."),
    "repvgg_b3": RepVGGCfg(B_DEPTHS, 3.0, 5.0, published=Numbers(_m(110.96), _m(26200), 80.52),
                           reference=Numbers(110_960_872, _m(26208.9)), notes="top-1 from the 200-epoch recipe."),
    "repvgg_b3g2": RepVGGCfg(B_DEPTHS, 3.0, 5.0, groups=2, timm=False, reference=Numbers(87_404_776, _m(19446.0)),
                             notes="Defined in REPVGG code but absent from the paper tables and README: "
                                   "no published params/MACs/top-1."),
    "repvgg_b3g4": RepVGGCfg(B_DEPTHS, 3.0, 5.0, groups=4, published=Numbers(_m(75.62), _m(16100), 80.21),
                             reference=Numbers(75_626_728, _m(16064.5)), notes="top-1 from the 200-epoch recipe."),
}


def build_repvgg(cfg: RepVGGCfg, num_classes: int = 1000) -> nn.Module:
    widths = (int(64 * cfg.a), int(128 * cfg.a), int(256 * cfg.a), int(512 * cfg.b))
    c = min(64, int(64 * cfg.a))
    stem = RepBranchBlock(3, c, 3, 2)
    stages, layer = [], 1
    for width, depth in zip(widths, cfg.depths, strict=True):
        blocks = []
        for i in range(depth):
            groups = cfg.groups if layer in GROUPED_LAYERS else 1
            blocks.append(RepBranchBlock(c, width, 3, 2 if i == 0 else 1, groups=groups))
            c, layer = width, layer + 1
        stages.append(blocks)
    return PlainRepNet(stem, stages, c, num_classes)


def _spec(name: str, cfg: RepVGGCfg) -> ModelSpec:
    return ModelSpec(
        name=name, family=FAMILY, input_size=(3, 224, 224),
        preprocessing=Preprocessing(resize=256, crop=224, interpolation="bilinear"),  # crop_pct 0.875
        published=cfg.published, reference=cfg.reference, sources=SOURCES,
        aliases=(f"{name}.rvgg_in1k",) if cfg.timm else (),  # timm's own name equals ours
        kind="conv", multi_branch=True, notes=cfg.notes)


for _name, _cfg in VARIANTS.items():
    register(_spec(_name, _cfg), partial(build_repvgg, _cfg))

# official: stage0 / stage{s}.{i} / rbr_dense / rbr_1x1 / rbr_identity / rbr_reparam / linear
register_layout(FAMILY, KeyLayout(
    "official", segment_renames([("conv_kxk.0", "rbr_dense"), ("conv_scale", "rbr_1x1"), ("identity", "rbr_identity"),
                                 ("reparam_conv", "rbr_reparam")], STAGES),
    "DingXiaoH/RepVGG: RepVGG-*-train.pth (train) and converted deploy checkpoints (rbr_reparam)"))
# timm: our names except a single, un-indexed conv_kxk and conv_1x1 for the 1×1 branch
register_layout(FAMILY, KeyLayout(
    "timm", segment_renames([("conv_scale", "conv_1x1")], Regex(
        ((r"(^|\.)conv_kxk\.(?!\d)", r"\g<1>conv_kxk.0."),), (ren("conv_kxk.0", "conv_kxk"),))),
    "timm byobnet repvgg_*.rvgg_in1k (train form; reparam_conv after reparameterize)"))
