"""ResNet-18/-50 and ResNeXt-50 32x4d (baselines).

Papers: He, Zhang, Ren, Sun, "Deep Residual Learning for Image Recognition", CVPR 2016, arXiv 1512.03385;
Xie, Girshick, Dollár, Tu, He, "Aggregated Residual Transformations for Deep Neural Networks" (ResNeXt),
CVPR 2017, arXiv 1611.05431. Reference implementations: pytorch/vision ``torchvision/models/resnet.py``
(BSD-3-Clause; the layout of the official checkpoints) and timm ``timm/models/resnet.py`` (Apache-2.0), whose
``resnet18/50`` and ``resnext50_32x4d`` have the same keys and numerics. Written from the papers, no code copied.

The bottleneck strides on its 3×3 conv ("ResNet v1.5", as both references). Ours: ``stem`` (7×7/2 ConvNormAct
+ ReLU) → 3×3/2 max pool → ``stages.{s}.{j}`` (BasicBlock / Bottleneck of ConvNormActs ``conv1..3`` and a 1×1
``downsample``) → pool → ``fc``. The deploy form folds every BN into its conv.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import torch
from torch import nn

from ..keymap import Regex
from ..layers.conv import ConvNormAct
from ..layers.shuffle import NonNegMaxPool
from ..registry import register
from ..specs import ModelSpec, Numbers, Preprocessing
from ..weights import Conventions, KeyLayout, register_layout

FAMILY = "resnet"
WIDTHS = (64, 128, 256, 512)


@dataclass(frozen=True)
class ResNetCfg:
    bottleneck: bool
    depths: tuple[int, int, int, int]
    groups: int
    base_width: int  # width of each group at stage 0 (ResNeXt 32x4d: 4)
    alias: str
    published: Numbers
    reference: Numbers


VARIANTS: dict[str, ResNetCfg] = {
    "resnet18": ResNetCfg(False, (2, 2, 2, 2), 1, 64, "resnet_18", Numbers(11_700_000, 1_810_000_000, 69.758),
                          Numbers(11_689_512, 1_814_073_344)),
    "resnet50": ResNetCfg(True, (3, 4, 6, 3), 1, 64, "resnet_50", Numbers(25_600_000, 4_090_000_000, 76.130),
                          Numbers(25_557_032, 4_089_184_256)),
    "resnext50_32x4d": ResNetCfg(True, (3, 4, 6, 3), 32, 4, "resnext50", Numbers(25_000_000, 4_230_000_000, 77.618),
                                 Numbers(25_028_904, 4_230_479_872)),
}

SOURCES = (
    "paper: arXiv 1512.03385 (ResNet), arXiv 1611.05431 (ResNeXt)",
    "TV pytorch/vision 0.29.1: torchvision/models/resnet.py (IMAGENET1K_V1 params / GFLOPS / acc@1 in its docs)",
    "TIMM huggingface/pytorch-image-models 1.0.31: timm/models/resnet.py",
)


def _relu() -> nn.Module:
    return nn.ReLU(inplace=True)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, cin: int, width: int, stride: int, groups: int = 1, base_width: int = 64):
        super().__init__()
        self.conv1 = ConvNormAct(cin, width, 3, stride, act=_relu())
        self.conv2 = ConvNormAct(width, width, 3, 1)
        self.downsample = ConvNormAct(cin, width, 1, stride) if stride != 1 or cin != width else None
        self.act = _relu()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skip = x if self.downsample is None else self.downsample(x)
        return self.act(self.conv2(self.conv1(x)) + skip)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin: int, width: int, stride: int, groups: int = 1, base_width: int = 64):
        super().__init__()
        mid = int(width * base_width / 64) * groups
        cout = width * self.expansion
        self.conv1 = ConvNormAct(cin, mid, 1, act=_relu())
        self.conv2 = ConvNormAct(mid, mid, 3, stride, groups, act=_relu())
        self.conv3 = ConvNormAct(mid, cout, 1)
        self.downsample = ConvNormAct(cin, cout, 1, stride) if stride != 1 or cin != cout else None
        self.act = _relu()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skip = x if self.downsample is None else self.downsample(x)
        return self.act(self.conv3(self.conv2(self.conv1(x))) + skip)


class ResNet(nn.Module):
    def __init__(self, cfg: ResNetCfg, num_classes: int = 1000):
        super().__init__()
        block = Bottleneck if cfg.bottleneck else BasicBlock
        self.stem = ConvNormAct(3, 64, 7, 2, act=_relu())
        self.pool = NonNegMaxPool()  # after the stem ReLU: zero padding, no -inf in the graph
        stages, cin = [], 64
        for s, (depth, width) in enumerate(zip(cfg.depths, WIDTHS, strict=True)):
            blocks = []
            for j in range(depth):
                blocks.append(block(cin, width, 2 if s and not j else 1, cfg.groups, cfg.base_width))
                cin = width * block.expansion
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stages(self.pool(self.stem(x)))
        return self.fc(torch.flatten(x.mean((2, 3), keepdim=True), 1))


# --------------------------------------------------------------------------- reference key layout
# torchvision and timm: conv1/bn1, layer{s+1}.{j}.conv{n}/bn{n}/downsample.{0,1}, fc (the same keys in both)
TORCHVISION = Regex(
    to_ours_rules=((r"^conv1\.", "stem.conv."), (r"^bn1\.", "stem.bn."),
                   (r"^layer(\d)\.", lambda m: f"stages.{int(m[1]) - 1}."),
                   (r"\.conv(\d)\.", r".conv\1.conv."), (r"\.bn(\d)\.", r".conv\1.bn."),
                   (r"\.downsample\.0\.", ".downsample.conv."), (r"\.downsample\.1\.", ".downsample.bn.")),
    from_ours_rules=((r"^stem\.conv\.", "conv1."), (r"^stem\.bn\.", "bn1."),
                     (r"^stages\.(\d)\.", lambda m: f"layer{int(m[1]) + 1}."),
                     (r"\.conv(\d)\.conv\.", r".conv\1."), (r"\.conv(\d)\.bn\.", r".bn\1."),
                     (r"\.downsample\.conv\.", ".downsample.0."), (r"\.downsample\.bn\.", ".downsample.1.")))

register_layout(FAMILY, KeyLayout("torchvision", TORCHVISION,
                                  "torchvision / timm conv1 / layerN.J / fc (the same keys in both)",
                                  Conventions(1e-5, 0.1)))


def _spec(name: str, cfg: ResNetCfg) -> ModelSpec:
    return ModelSpec(
        name=name, family=FAMILY, input_size=(3, 224, 224),
        preprocessing=Preprocessing(resize=256, crop=224, interpolation="bilinear"),
        published=cfg.published, reference=cfg.reference, sources=SOURCES, aliases=(cfg.alias,),
        notes="Published numbers: torchvision IMAGENET1K_V1 (params, GFLOPS = GMACs, acc@1). Reference params and "
              "MACs: torchvision 0.29.1 (train-form parameters; torch FlopCounterMode / 2 at 224).")


def build_resnet(cfg: ResNetCfg, num_classes: int = 1000) -> ResNet:
    return ResNet(cfg, num_classes)


for _name, _cfg in VARIANTS.items():
    register(_spec(_name, _cfg), partial(build_resnet, _cfg))
