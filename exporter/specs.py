"""ModelSpec: everything a converter, a harness or an app needs to know about a model besides its weights."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import asdict, dataclass, field

from .errors import UsageError

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

    resize: int  # the shorter side after resizing (scaled up where the crop would not fit)
    crop: int | tuple[int, int]  # S (square) or (H, W)
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    color: str = "RGB"
    interpolation: str = "bilinear"

    @property
    def crop_hw(self) -> tuple[int, int]:
        """The crop as (height, width), square or not."""
        return (self.crop, self.crop) if isinstance(self.crop, int) else (int(self.crop[0]), int(self.crop[1]))


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
    num_classes: int = 1000
    # input sizes the architecture accepts, checked before a model is built (``check_input_size``): height and
    # width at least ``min_size`` and multiples of ``size_multiple``; ``size_reason`` says why, in the error.
    # A family sets them at registration; every family of the zoo has output stride 32 and global pooling and
    # runs at any size from 32 (MobileViTv3 interpolates odd maps as cvnets does), so all use the defaults.
    min_size: int = 32
    size_multiple: int = 1
    size_reason: str = ("the network downsamples by 32, so a smaller input leaves its last stages a 1x1 map made "
                        "mostly of padding")

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

    def check_input_size(self, height: int, width: int) -> None:
        """UsageError naming the model, the rule and the reason when (height, width) is not accepted."""
        m, low = self.size_multiple, self.min_size
        if height < low or width < low:
            raise UsageError(f"{self.name}: input height and width must be at least {low} (got {height}x{width}): "
                             f"{self.size_reason}")
        if m > 1 and (height % m or width % m):
            raise UsageError(f"{self.name}: input height and width must be multiples of {m} (got {height}x{width}): "
                             f"{self.size_reason}")

    def with_shape(self, *, num_classes: int | None = None,
                   input_size: tuple[int, int] | int | str | None = None) -> ModelSpec:
        """This spec for ``num_classes`` outputs and an input of ``input_size`` (S, (H, W), (3, H, W) or "HxW").

        The crop becomes (H, W) (an int when square) and ``resize`` keeps the original resize/crop ratio
        (resize = round(max(H, W) · resize / crop), so the crop fits whatever the photo's aspect). Numbers that
        describe another shape are cleared: params change with the class count, MACs and top-1 with both;
        ``default_weights`` (ImageNet-1k checkpoints) is dropped when the class count changes. The same shape
        returns an equal spec. Shape a registered spec: cleared numbers do not come back.
        """
        n = self.num_classes if num_classes is None else check_num_classes(num_classes)
        h, w = self.input_size[1:] if input_size is None else normalize_input_size(input_size)
        if (n, (h, w)) == (self.num_classes, tuple(self.input_size[1:])):
            return self
        self.check_input_size(h, w)
        classes_changed, size_changed = n != self.num_classes, (h, w) != tuple(self.input_size[1:])
        return dataclasses.replace(
            self, num_classes=n, input_size=(self.input_size[0], h, w),
            preprocessing=_shaped_preprocessing(self.preprocessing, h, w) if size_changed else self.preprocessing,
            published=_clear(self.published, classes_changed),
            reference=_clear(self.reference, classes_changed),
            default_weights=None if classes_changed else self.default_weights,
            notes=_shape_note(self, n, h, w))

    def to_dict(self) -> dict:
        d = asdict(self)
        d["layout"] = self.layout
        return d


def _shaped_preprocessing(pre: Preprocessing, h: int, w: int) -> Preprocessing:
    ratio = pre.resize / max(pre.crop_hw)
    return dataclasses.replace(pre, crop=h if h == w else (h, w), resize=int(round(max(h, w) * ratio)))


def _clear(numbers: Numbers, classes_changed: bool) -> Numbers:
    """MACs and top-1 describe one shape; params survive a new input size but not a new class count."""
    return Numbers(params=None if classes_changed else numbers.params)


def _shape_note(spec: ModelSpec, n: int, h: int, w: int) -> str:
    _, h0, w0 = spec.input_size
    note = (f"Shaped: {n} classes at {h}x{w} (registered: {spec.num_classes} classes at {h0}x{w0}); "
            "published/reference numbers that describe the registered shape are cleared.")
    return f"{note} {spec.notes}" if spec.notes else note


def check_num_classes(value) -> int:
    """``value`` if it is a positive int; UsageError otherwise (bools and strings are rejected)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise UsageError(f"num_classes must be a positive integer, got {value!r}")
    return value


_SIZE_RE = re.compile(r"\s*(\d+)\s*(?:[xX×]\s*(\d+)\s*)?", re.ASCII)


def parse_input_size(text: str) -> tuple[int, int]:
    """Parse "S" → (S, S) or "HxW" → (H, W) (also "X" or "×"); UsageError for anything else or a size below 1."""
    m = _SIZE_RE.fullmatch(text) if isinstance(text, str) else None
    if m is None:
        raise UsageError(f"input size must be S or HxW with positive integers (e.g. 224 or 224x288), got {text!r}")
    h = int(m.group(1))
    w = int(m.group(2)) if m.group(2) is not None else h
    if h < 1 or w < 1:
        raise UsageError(f"input size must be positive, got {text!r}")
    return h, w


def normalize_input_size(size) -> tuple[int, int]:
    """(H, W) from S, (H, W), (3, H, W) or a "S"/"HxW" string; UsageError for anything else."""
    if isinstance(size, str):
        return parse_input_size(size)
    dims = (size,) * 2 if isinstance(size, int) and not isinstance(size, bool) else size
    if isinstance(dims, (tuple, list)) and len(dims) == 3 and dims[0] == 3:
        dims = dims[1:]
    ok = isinstance(dims, (tuple, list)) and len(dims) == 2 and all(
        isinstance(d, int) and not isinstance(d, bool) and d >= 1 for d in dims)
    if not ok:
        raise UsageError(f"input size must be a positive int S, (H, W) or (3, H, W), got {size!r}")
    return int(dims[0]), int(dims[1])
