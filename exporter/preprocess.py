"""Image → network input exactly as a model's ``Preprocessing`` says (the torchvision/timm eval recipe).

resize the shorter side to ``resize`` (aspect kept, PIL resampling with antialiasing, as torchvision's
``Resize`` on PIL images; scaled up further only where the (H, W) crop would not fit) → centre crop H×W
(``crop_hw``; square for the zoo's registered specs) → [0, 1] → channel order (RGB or BGR) →
``(x - mean) / std`` → NCHW float32. Grey, grey+alpha, palette, RGBA, CMYK and 16-bit images are converted
to 8-bit RGB first (alpha is dropped, like ``Image.convert("RGB")``). Pillow is imported lazily.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

import numpy as np

from .errors import UsageError
from .specs import ModelSpec, Preprocessing

_RESAMPLE = {"nearest": "NEAREST", "bilinear": "BILINEAR", "bicubic": "BICUBIC", "lanczos": "LANCZOS",
             "box": "BOX", "hamming": "HAMMING"}


def _pre(spec: ModelSpec | Preprocessing) -> Preprocessing:
    return spec.preprocessing if isinstance(spec, ModelSpec) else spec


def _to_rgb(img: Any):
    from PIL import Image

    if img.mode in ("I;16", "I;16B", "I;16L", "I"):  # 16/32-bit grey: scale the range to 8 bits
        a = np.asarray(img, dtype=np.float64)
        hi = 65535.0 if img.mode.startswith("I;16") or a.max() > 255 else 255.0
        img = Image.fromarray(np.clip(a / hi * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")
    elif img.mode == "F":
        img = Image.fromarray(np.clip(np.asarray(img) * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")
    return img if img.mode == "RGB" else img.convert("RGB")


def open_image(image: str | os.PathLike | Any):
    """A PIL RGB image from a path, a PIL image, or an HWC/HW uint8 numpy array."""
    from PIL import Image, UnidentifiedImageError

    if isinstance(image, Image.Image):
        return _to_rgb(image)
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8 or image.ndim not in (2, 3):
            raise UsageError(f"numpy images must be uint8 HxW or HxWxC, got {image.dtype} {image.shape}")
        return _to_rgb(Image.fromarray(image))
    try:
        with Image.open(image) as im:
            im.load()
            return _to_rgb(im)
    except (OSError, UnidentifiedImageError, ValueError) as e:
        raise UsageError(f"cannot read image {image}: {e}") from None


def resize_shorter(img: Any, pre: Preprocessing):
    """Shorter side → ``pre.resize`` (torchvision rounding), aspect kept; if the (H, W) crop would not fit
    (a non-square crop, or ``resize`` below the crop), scaled up just enough that it does."""
    from PIL import Image

    if pre.interpolation not in _RESAMPLE:
        raise UsageError(f"unknown interpolation '{pre.interpolation}' (known: {', '.join(_RESAMPLE)})")
    resample = getattr(Image.Resampling, _RESAMPLE[pre.interpolation])
    w, h = img.size
    if w <= h:
        size = (pre.resize, int(pre.resize * h / w))
    else:
        size = (int(pre.resize * w / h), pre.resize)
    ch, cw = pre.crop_hw
    if size[0] < cw or size[1] < ch:
        s = max(cw / w, ch / h)
        size = (max(cw, int(round(w * s))), max(ch, int(round(h * s))))
    return img.resize(size, resample) if size != (w, h) else img


def crop_boxes(img: Any, pre: Preprocessing, corners: bool = False) -> list[tuple[int, int, int, int]]:
    """The centre H×W crop (``pre.crop_hw``) of ``img`` as (left, top, right, bottom); with ``corners`` also
    the four corner crops (the ten-crop evaluation's positions)."""
    w, h = img.size
    ch, cw = pre.crop_hw
    if cw > w or ch > h:
        raise UsageError(f"crop {ch}x{cw} (HxW) is larger than the resized image {h}x{w}")
    top, left = int(round((h - ch) / 2.0)), int(round((w - cw) / 2.0))
    boxes = [(left, top)] + ([(0, 0), (w - cw, 0), (0, h - ch), (w - cw, h - ch)] if corners else [])
    return [(x, y, x + cw, y + ch) for x, y in boxes]


def resize_crop(img: Any, pre: Preprocessing):
    """Shorter side → ``pre.resize`` (torchvision rounding), then the centre H×W crop (``pre.crop_hw``)."""
    img = resize_shorter(img, pre)
    return img.crop(crop_boxes(img, pre)[0])


def to_input(img: Any, pre: Preprocessing) -> np.ndarray:
    """A cropped RGB image → (1, 3, H, W) float32: [0, 1] → channel order → ``(x - mean) / std``."""
    if pre.color not in ("RGB", "BGR"):
        raise UsageError(f"unknown channel order '{pre.color}' (RGB or BGR)")
    x = np.asarray(img, dtype=np.float32) / 255.0  # HWC, RGB
    if pre.color == "BGR":
        x = x[:, :, ::-1]
    x = (x - np.asarray(pre.mean, np.float32)) / np.asarray(pre.std, np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None], dtype=np.float32)


def preprocess(image: str | os.PathLike | Any, spec: ModelSpec | Preprocessing) -> np.ndarray:
    """One image → float32 array of shape (1, 3, H, W) (H, W = ``crop_hw``), ready for the model."""
    pre = _pre(spec)
    return to_input(resize_crop(open_image(image), pre), pre)


def load_images(paths: Iterable[str | os.PathLike | Any], spec: ModelSpec | Preprocessing) -> np.ndarray:
    """Several images → float32 array (N, 3, H, W)."""
    arrays = [preprocess(p, spec) for p in paths]
    if not arrays:
        raise UsageError("load_images: no images given")
    return np.concatenate(arrays, axis=0)
