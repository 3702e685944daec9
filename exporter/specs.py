"""ModelSpec: everything a converter, a harness or an app needs to know about a model besides its weights."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
INCEPTION_MEAN = (0.5, 0.5, 0.5)
INCEPTION_STD = (0.5, 0.5, 0.5)
NO_NORM_MEAN = (0.0, 0.0, 0.0)
NO_NORM_STD = (1.0, 1.0, 1.0)


@dataclass(frozen=True)
class Numbers:
    """Parameter count, MACs (multiply-accumulates, batch 1) and ImageNet-1k top-1 (%)."""

    params: int | None = None
    macs: int | None = None
    top1: float | None = None


@dataclass(frozen=True)
class Preprocessing:
    """How pixels become the input tensor: resize shorter side, centre crop, scale to [0,1], normalise.

    ``color`` is the channel order the network was trained on ("RGB" or "BGR"; MobileViTv3 v1-style is BGR).
    The input tensor is ``(pixel/255 - mean) / std`` in that channel order, NCHW.
    """

    resize: int
    crop: int
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    color: str = "RGB"
    interpolation: str = "bilinear"


@dataclass(frozen=True)
class ModelSpec:
    name: str
    family: str
    input_size: tuple[int, int, int]  # (C, H, W)
    preprocessing: Preprocessing
    published: Numbers = field(default_factory=Numbers)
    reference: Numbers = field(default_factory=Numbers)  # measured on the reference implementation (deploy form)
    sources: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()
    kind: str = "conv"  # "conv" (pure convolutional) or "hybrid" (attention inside)
    multi_branch: bool = False  # train form has branches that re-parameterization removes (MobileOne, RepVGG)
    default_weights: str | None = None  # file name under the assets weights folder, if real weights exist
    notes: str = ""

    @property
    def layout(self) -> str:
        return "NCHW"

    @property
    def mean(self) -> tuple[float, float, float]:
        return self.preprocessing.mean

    @property
    def std(self) -> tuple[float, float, float]:
        return self.preprocessing.std

    @property
    def color(self) -> str:
        return self.preprocessing.color

    def to_dict(self) -> dict:
        d = asdict(self)
        d["layout"] = self.layout
        return d
