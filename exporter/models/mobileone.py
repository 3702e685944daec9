"""MobileOne S0–S4 and μ0–μ2.

Paper: Vasu, Gabriel, Zhu, Tuzel, Ranjan, "MobileOne: An Improved One millisecond Mobile Backbone",
CVPR 2023, arXiv 2206.04040 (μ variants: supplementary Tables 13 and 17).
Reference implementation: apple/ml-mobileone (``mobileone.py``; Apple sample-code licence, see its LICENSE);
timm ``byobnet.py`` (Apache-2.0) re-implements S0–S4 with the same numbers. Written from the paper, no code copied.

Train form: a stem block, then four stages of (depthwise 3×3 block, pointwise 1×1 block) pairs, each block a
``RepBranchBlock`` with k conv branches (+ 1×1 scale branch on 3×3 blocks, + BN skip where shapes allow);
S4 puts SE before the ReLU in the last 5 pairs of stage 3 and in stage 4. Deploy form: plain conv/ReLU chain.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

from torch import nn

from ..keymap import segment_renames
from ..layers.mobileone_block import PlainRepNet, RepBranchBlock
from ..registry import register
from ..specs import ModelSpec, Numbers, Preprocessing
from ..weights import KeyLayout, register_layout
from ._ref_keys import STAGES

FAMILY = "mobileone"
BASE_WIDTHS = (64, 128, 256, 512)
SE_RATIO = 0.0625

SOURCES = (
    "paper: arXiv 2206.04040 (MobileOne), Tables 8/9 (S0–S4), 13/17 (μ0–μ2)",
    "APPLE-MO apple/ml-mobileone@b7f4e6d48884593c7eb46eedc53c3a097c09e957: mobileone.py",
    "TIMM huggingface/pytorch-image-models@aa4b5850c1543fa488abf260f18390eda46cf85d: timm/models/byobnet.py",
)


@dataclass(frozen=True)
class MobileOneCfg:
    alphas: tuple[float, float, float, float]  # width multipliers of the four stages (× BASE_WIDTHS)
    k: int  # conv branches per block inside the stages
    depths: tuple[int, int, int, int] = (2, 8, 10, 1)  # (DW, PW) pairs per stage
    se_blocks: tuple[int, int, int, int] = (0, 0, 0, 0)  # the last n pairs of a stage get SE
    stem_k: int = 1  # conv branches of the stem block
    crop_pct: float = 0.9
    published: Numbers = Numbers()
    reference: Numbers = Numbers()  # measured on APPLE-MO, inference form
    notes: str = ""


MU_NOTE = ("No reference code exists: built from the paper's Table 17 with channels int(base×α) "
           "and the paper's stages 4+5 merged into code stage 3 (stem k from the table; it only changes the train "
           "form). MACs match the paper's FLOPs to 1%, which supports this rounding. "
           "Preprocessing not stated by the paper: S0's (crop_pct 0.875). Measured params and MACs: "
           "results/zoo.md (scripts/zoo_table.py).")

VARIANTS: dict[str, MobileOneCfg] = {
    "mobileone_s0": MobileOneCfg((0.75, 1.0, 1.0, 2.0), k=4, crop_pct=0.875,
                                 published=Numbers(2_100_000, 275_000_000, 71.4),
                                 reference=Numbers(2_078_504, 275_100_000)),
    "mobileone_s1": MobileOneCfg((1.5, 1.5, 2.0, 2.5), k=1,
                                 published=Numbers(4_800_000, 825_000_000, 75.9),
                                 reference=Numbers(4_764_840, 825_100_000)),
    "mobileone_s2": MobileOneCfg((1.5, 2.0, 2.5, 4.0), k=1,
                                 published=Numbers(7_800_000, 1_299_000_000, 77.4),
                                 reference=Numbers(7_808_168, 1_298_400_000)),
    "mobileone_s3": MobileOneCfg((2.0, 2.5, 3.0, 4.0), k=1,
                                 published=Numbers(10_100_000, 1_896_000_000, 78.1),
                                 reference=Numbers(10_078_312, 1_895_800_000)),
    "mobileone_s4": MobileOneCfg((3.0, 3.5, 3.5, 4.0), k=1, se_blocks=(0, 0, 5, 1),
                                 published=Numbers(14_800_000, 2_978_000_000, 79.4),
                                 reference=Numbers(14_838_352, 2_979_300_000)),
    "mobileone_mu0": MobileOneCfg((0.75, 0.5, 0.5, 0.75), k=3, depths=(2, 4, 6, 1), stem_k=3, crop_pct=0.875,
                                  published=Numbers(570_000, 68_000_000, 58.5),
                                  notes=MU_NOTE),
    "mobileone_mu1": MobileOneCfg((0.75, 0.75, 0.75, 1.0), k=2, depths=(2, 6, 8, 1), stem_k=2, crop_pct=0.875,
                                  published=Numbers(980_000, 139_000_000, 66.2),
                                  notes=MU_NOTE),
    "mobileone_mu2": MobileOneCfg((0.75, 1.0, 1.0, 1.0), k=2, depths=(2, 6, 8, 1), stem_k=2, crop_pct=0.875,
                                  published=Numbers(1_300_000, 214_000_000, 69.0),
                                  notes=MU_NOTE),
}


def _pair(c_in: int, c_out: int, stride: int, k: int, se: bool) -> list[RepBranchBlock]:
    """One MobileOne block: depthwise 3×3 (carries the stride) then pointwise 1×1."""
    se_rd = (lambda c: int(c * SE_RATIO)) if se else (lambda c: 0)
    return [RepBranchBlock(c_in, c_in, 3, stride, groups=c_in, num_branches=k, se_reduced=se_rd(c_in)),
            RepBranchBlock(c_in, c_out, 1, 1, num_branches=k, se_reduced=se_rd(c_out))]


def build_mobileone(cfg: MobileOneCfg, num_classes: int = 1000) -> nn.Module:
    widths = [int(b * a) for b, a in zip(BASE_WIDTHS, cfg.alphas, strict=True)]
    c = min(64, int(64 * cfg.alphas[0]))
    stem = RepBranchBlock(3, c, 3, 2, num_branches=cfg.stem_k)
    stages = []
    for width, depth, n_se in zip(widths, cfg.depths, cfg.se_blocks, strict=True):
        blocks = []
        for i in range(depth):
            blocks += _pair(c, width, 2 if i == 0 else 1, cfg.k, se=i >= depth - n_se)
            c = width
        stages.append(blocks)
    return PlainRepNet(stem, stages, c, num_classes)


def _spec(name: str, cfg: MobileOneCfg) -> ModelSpec:
    return ModelSpec(
        name=name, family=FAMILY, input_size=(3, 224, 224),
        preprocessing=Preprocessing(resize=int(224 / cfg.crop_pct), crop=224, interpolation="bilinear"),
        published=cfg.published, reference=cfg.reference, sources=SOURCES,
        aliases=() if "mu" in name else (f"{name}.apple_in1k",),  # timm's own name equals ours
        kind="conv", multi_branch=True, notes=cfg.notes)


for _name, _cfg in VARIANTS.items():
    register(_spec(_name, _cfg), partial(build_mobileone, _cfg))

# Apple: stage0 / stage{s}.{m} / rbr_conv.{j} / rbr_scale / rbr_skip / se.reduce|expand / reparam_conv / linear
register_layout(FAMILY, KeyLayout(
    "apple", segment_renames([("conv_kxk", "rbr_conv"), ("conv_scale", "rbr_scale"), ("identity", "rbr_skip")], STAGES),
    "apple/ml-mobileone: *_unfused.pth.tar (train) and *.pth.tar (fused, reparam_conv)"))
# timm: our names except the SE module (attn.fc1/fc2)
register_layout(FAMILY, KeyLayout(
    "timm", segment_renames([("se.reduce", "attn.fc1"), ("se.expand", "attn.fc2")]),
    "timm byobnet mobileone_s*.apple_in1k (train form; reparam_conv after reparameterize)"))
