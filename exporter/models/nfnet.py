"""ECA-NFNet-L0: the light NFNet-F0 (normalizer-free ResNet with scaled weight standardization).

Papers: Brock, De, Smith, Simonyan, "High-Performance Large-Scale Image Recognition Without Normalization",
ICML 2021, arXiv 2102.06171 (NFNet-F0..F6); Brock, De, Smith, arXiv 2101.08692 (scaled weight standardization,
signal propagation); Wang et al., "ECA-Net", CVPR 2020, arXiv 1910.03151. Reference implementation: timm
``timm/models/nfnet.py`` ``eca_nfnet_l0`` (Apache-2.0; Ross Wightman's "light" NFNet-F0, trained in timm, the
checkpoint ``ecanfnet_l0_ra2``). Written from the papers, no code copied.

Why L0 and not F0: F0 has 71.5M parameters and 12.4 GMACs at 256 (its reference resolution); every registered
model is exported, re-parameterized and traced at its full size in CI, and F0 would cost minutes there on two
cores and some 290 MB per fp32 artifact. L0 keeps F0's depths (1, 2, 6, 3), deep-quad stem, widths
(256, 512, 1536, 1536), extra 3×3 conv and α = 0.2 residual scaling, with a 0.25 bottleneck, group width 64,
a 1.5× final conv, SiLU and ECA attention instead of SE: 24.1M parameters (a third of F0's), 7.0 GMACs at 288,
and public ImageNet weights that timm trained (F0's are DeepMind's, with TF-SAME padding).

Block (pre-activation): h = act(x)·β (β = 1/√expected variance) → 1×1 → act → 3×3 grouped (stride) → act →
3×3 grouped → act → 1×1 → ECA·2 → ·α, plus x or, when the shape changes, 2×2 avg-pool + 1×1 of h. Every conv is a
``ScaledStdConv2d`` (γ_SiLU = 1.7881). Deploy form: every weight standardization folded into its conv (plain
conv + bias) and β folded into the convs that read h; no normalization op is left.
Ours has timm's module names (stem.conv1..4, stages.S.J.conv1/conv2/conv2b/conv3/attn_last/downsample.conv,
final_conv, head.fc), so a timm checkpoint loads without renaming.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial

import torch
from torch import nn

from ..keymap import Regex
from ..layers.conv import make_divisible
from ..layers.reparam import Reparameterizable
from ..layers.ws_conv import ScaledStdConv2d
from ..registry import register
from ..specs import ModelSpec, Numbers, Preprocessing
from ..weights import KeyLayout, register_layout

FAMILY = "nfnet"
GAMMA_SILU = 1.7881293296813965  # E[silu(x)²]^-½ for x ~ N(0, 1), the NFNet papers' constant
ALPHA, ATTN_GAIN, STD_EPS = 0.2, 2.0, 1e-5


@dataclass(frozen=True)
class NFNetCfg:
    depths: tuple[int, int, int, int]
    widths: tuple[int, int, int, int]
    stem: int
    group_width: int
    bottleneck: float
    final_mult: float
    size: int
    published: Numbers
    reference: Numbers


VARIANTS: dict[str, NFNetCfg] = {
    "eca_nfnet_l0": NFNetCfg((1, 2, 6, 3), (256, 512, 1536, 1536), 128, 64, 0.25, 1.5, 288,
                             Numbers(24_100_000, 7_120_000_000, 82.58), Numbers(24_143_924, 7_014_465_280)),
}

SOURCES = (
    "paper: arXiv 2102.06171 (NFNets), arXiv 2101.08692 (scaled WS), arXiv 1910.03151 (ECA)",
    "TIMM huggingface/pytorch-image-models 1.0.31: timm/models/nfnet.py (eca_nfnet_l0), timm/layers/std_conv.py, "
    "timm/layers/eca.py; results-imagenet.csv (eca_nfnet_l0 @ 288: 82.58 top-1)",
)


def _conv(cin: int, cout: int, k: int = 1, stride: int = 1, groups: int = 1) -> ScaledStdConv2d:
    return ScaledStdConv2d(cin, cout, k, stride, groups, gamma=GAMMA_SILU, eps=STD_EPS)


class ECA(nn.Module):
    """x · sigmoid(conv1d_k(mean_hw(x))) across channels, k from the channel count (ECA-Net's rule)."""

    def __init__(self, channels: int):
        super().__init__()
        t = int(abs(math.log2(channels) + 1) / 2)
        k = max(t if t % 2 else t + 1, 3)
        self.conv = nn.Conv1d(1, 1, k, padding=(k - 1) // 2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x.mean((2, 3)).unsqueeze(1))  # (B, 1, C): no shape read, so torch.fx can trace it
        return x * torch.sigmoid(y).transpose(1, 2).unsqueeze(-1)


class Downsample(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.pool = nn.AvgPool2d(2, stride, ceil_mode=True, count_include_pad=False) if stride > 1 else nn.Identity()
        self.conv = _conv(cin, cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(self.pool(x))


class NFBlock(Reparameterizable):
    def __init__(self, cin: int, cout: int, stride: int, beta: float, cfg: NFNetCfg):
        super().__init__()
        mid = make_divisible(cout * cfg.bottleneck, 8)
        groups = mid // cfg.group_width
        mid = groups * cfg.group_width
        self.beta = beta
        self.downsample = Downsample(cin, cout, stride) if cin != cout or stride != 1 else None
        self.act1, self.act2, self.act2b, self.act3 = (nn.SiLU() for _ in range(4))
        self.conv1 = _conv(cin, mid)
        self.conv2 = _conv(mid, mid, 3, stride, groups)
        self.conv2b = _conv(mid, mid, 3, 1, groups)
        self.conv3 = _conv(mid, cout)
        self.attn_last = ECA(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.act1(x)
        if self.beta != 1.0:
            h = h * self.beta
        skip = x if self.downsample is None else self.downsample(h)
        y = self.conv2b(self.act2b(self.conv2(self.act2(self.conv1(h)))))
        y = self.attn_last(self.conv3(self.act3(y)))
        return y * (ATTN_GAIN * ALPHA) + skip

    @torch.no_grad()
    def reparameterize(self) -> None:
        """Fold each conv's weight standardization, then β into the convs that read act(x)·β."""
        if self.deployed:
            return
        for m in self.modules():
            if isinstance(m, ScaledStdConv2d):
                m.reparameterize()
        for conv in [self.conv1] + ([self.downsample.conv] if self.downsample is not None else []):
            conv.weight.mul_(self.beta)  # conv(β·h) = (β·W) * h + b; the avg pool before it is linear too
        self.beta = 1.0
        self._mark_deployed()


class NFNet(nn.Module):
    def __init__(self, cfg: NFNetCfg, num_classes: int = 1000):
        super().__init__()
        c = cfg.stem
        self.stem = nn.Sequential()
        for i, (cin, cout, s) in enumerate(((3, c // 8, 2), (c // 8, c // 4, 1), (c // 4, c // 2, 1),
                                            (c // 2, c, 2))):
            if i:
                self.stem.add_module(f"act{i + 1}", nn.SiLU())
            self.stem.add_module(f"conv{i + 1}", _conv(cin, cout, 3, s))
        stages, cin, var = [], c, 1.0
        for s, (depth, width) in enumerate(zip(cfg.depths, cfg.widths, strict=True)):
            blocks = []
            for j in range(depth):
                blocks.append(NFBlock(cin, width, 2 if s and not j else 1, 1.0 / math.sqrt(var), cfg))
                var = (1.0 if j == 0 else var) + ALPHA**2  # reset after a stage's first block
                cin = width
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        features = make_divisible(cfg.widths[-1] * cfg.final_mult, 8)
        self.final_conv = _conv(cin, features)
        self.final_act = nn.SiLU()
        self.head = nn.Sequential()
        self.head.add_module("fc", nn.Linear(features, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.final_act(self.final_conv(self.stages(self.stem(x))))
        return self.head(torch.flatten(x.mean((2, 3), keepdim=True), 1))


# timm's keys are ours (the module docstring): the layout maps every key to itself
register_layout(FAMILY, KeyLayout("timm", Regex((), ()), "timm eca_nfnet_l0 (the same module names as ours)"))


def _spec(name: str, cfg: NFNetCfg) -> ModelSpec:
    return ModelSpec(
        name=name, family=FAMILY, input_size=(3, cfg.size, cfg.size),
        preprocessing=Preprocessing(resize=cfg.size, crop=cfg.size, interpolation="bicubic"),
        published=cfg.published, reference=cfg.reference, sources=SOURCES, aliases=("nfnet_l0_eca",),
        notes="Light variant of NFNet-F0 (the module docstring says why). Published: timm's results table "
              "(82.58 top-1, 7.12 GMACs at 288, test crop 1.0). Reference params and MACs: timm 1.0.31 eca_nfnet_l0 at 288 "
              "(torch FlopCounterMode / 2). Deploy form: scaled weight standardization folded into plain convs.")


def build_nfnet(cfg: NFNetCfg, num_classes: int = 1000) -> NFNet:
    return NFNet(cfg, num_classes)


for _name, _cfg in VARIANTS.items():
    register(_spec(_name, _cfg), partial(build_nfnet, _cfg))
