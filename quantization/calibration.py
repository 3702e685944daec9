"""Calibration and held-out image sets for int8 quantization and fidelity checks.

Images are real photos preprocessed exactly as the model's spec says (resize shorter side, centre crop,
scale to [0,1], normalise, channel order). Sources, in order:

* ``--calibration DIR``: every image in DIR is a calibration image. Held-out images then come from the
  assets (``make assets``) when present, otherwise every fourth image of DIR is held out.
* default: the photos from ``make assets`` (``exporter.assets.split_images(ASSET_CALIBRATION_PHOTOS)``:
  that many calibration photos, *every* other photo held out; the manifest's ``images`` entry lists them),
  calibration and held-out disjoint.

Fewer calibration photos than ``max_calibration`` (32) are topped up with their horizontal mirror images
(deterministic; a mirror is a plausible photo, so activation statistics stay natural). Why few photos + mirrors
rather than more photos: the held-out set is what top-1 agreement is estimated on, and the fewer held-out
photos, the more one float near-tie flip moves it. The agreement with this split: results/matrix.md
(tflite-w8a8 and tensorrt-w8a8 rows; checked by tests/test_int8_real.py).

A missing, empty or unreadable directory, or fewer than ``MIN_CALIBRATION_IMAGES`` calibration images,
raises ``CalibrationError`` (exit 2) naming the directory or file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mobexport.exporter.errors import CalibrationError

MIN_CALIBRATION_IMAGES = 10
MIN_HOLDOUT_IMAGES = 4
ASSET_CALIBRATION_PHOTOS = 16  # distinct assets photos used for calibration; all others are held out
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".ppm")


@dataclass
class ImageSets:
    calibration: list[np.ndarray] = field(default_factory=list)  # each (1, C, H, W) float32
    holdout: list[np.ndarray] = field(default_factory=list)
    source: str = ""
    mirrored: int = 0  # calibration entries that are horizontal mirrors of calibration photos
    calibration_files: list[str] = field(default_factory=list)
    holdout_files: list[str] = field(default_factory=list)

    def describe(self) -> dict:
        return {"source": self.source, "calibration_images": len(self.calibration),
                "calibration_photos": len(self.calibration) - self.mirrored, "calibration_mirrored": self.mirrored,
                "holdout_images": len(self.holdout), "holdout_files": [Path(f).name for f in self.holdout_files]}


def list_images(directory: str | os.PathLike) -> list[Path]:
    d = Path(directory)
    if not d.exists():
        raise CalibrationError(f"calibration directory not found: {d}")
    if not d.is_dir():
        raise CalibrationError(f"calibration path is not a directory: {d}")
    files = sorted(p for p in d.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise CalibrationError(f"calibration directory {d} has no images ({', '.join(IMAGE_SUFFIXES)})")
    return files


def _fallback_preprocess(path: Path, spec) -> np.ndarray:
    from PIL import Image

    pp = spec.preprocessing
    resample = {"bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC, "nearest": Image.NEAREST}.get(
        pp.interpolation, Image.BILINEAR)
    with Image.open(path) as im:
        im = im.convert("RGB")
        w, h = im.size
        ch, cw = pp.crop_hw
        s = max(pp.resize / min(w, h), cw / w, ch / h)  # shorter side → resize, or more where the crop needs it
        im = im.resize((max(cw, round(w * s)), max(ch, round(h * s))), resample)
        w, h = im.size
        left, top = (w - cw) // 2, (h - ch) // 2
        im = im.crop((left, top, left + cw, top + ch))
        a = np.asarray(im, dtype=np.float32) / 255.0
    if pp.color.upper() == "BGR":
        a = a[..., ::-1]
    a = (a - np.asarray(pp.mean, np.float32)) / np.asarray(pp.std, np.float32)
    return np.ascontiguousarray(a.transpose(2, 0, 1)[None], dtype=np.float32)


def preprocess_image(path: str | os.PathLike, spec) -> np.ndarray:
    """One image → (1, C, H, W) float32 per the spec; CalibrationError if it cannot be read."""
    try:
        from mobexport.exporter.preprocess import preprocess
    except ImportError:
        preprocess = _fallback_preprocess
    try:
        x = np.asarray(preprocess(Path(path), spec), dtype=np.float32)
    except Exception as e:  # PIL raises several types for corrupt files
        raise CalibrationError(f"cannot read image {path}: {type(e).__name__}: {e}") from e
    return x if x.ndim == 4 else x[None]


def assets_images_dir() -> Path | None:
    """The photos of ``make assets`` (``exporter.assets.assets_dir()``), or None when not fetched."""
    from mobexport.exporter.assets import assets_dir

    d = assets_dir() / "images"
    return d if d.is_dir() and any(d.iterdir()) else None


def _assets_split(n_calib: int) -> tuple[list[Path], list[Path]] | None:
    """(calibration, held-out) photo paths from ``make assets``; None when the assets are not fetched."""
    from mobexport.exporter.assets import image_paths, split_images

    d = assets_images_dir()
    if d is None:
        return None
    n = len(image_paths())
    if n > MIN_HOLDOUT_IMAGES:
        return split_images(min(n_calib, n - MIN_HOLDOUT_IMAGES))
    return _split(list_images(d))


def _split(files: list[Path]) -> tuple[list[Path], list[Path]]:
    """Deterministic: every 4th file (from the 4th) is held out."""
    hold = [f for i, f in enumerate(files) if i % 4 == 3]
    calib = [f for i, f in enumerate(files) if i % 4 != 3]
    return calib, hold


def _paths(calibration_dir, n_calib: int) -> tuple[list[Path], list[Path], str]:
    assets = _assets_split(min(n_calib, ASSET_CALIBRATION_PHOTOS))
    if calibration_dir is not None:
        calib = list_images(calibration_dir)
        if assets is not None:
            mine = {p.resolve() for p in calib}
            hold = [p for p in assets[1] if p.resolve() not in mine]
            if len(hold) >= MIN_HOLDOUT_IMAGES:
                return calib, hold, f"{calibration_dir} (held-out: assets photos not in it)"
        calib, hold = _split(calib)
        return calib, hold, f"{calibration_dir} (held-out: every 4th image of it)"
    if assets is None:
        raise CalibrationError(
            "no calibration images: pass --calibration DIR (real photos) or run `make assets`")
    return assets[0], assets[1], "assets"


def _with_mirrors(images: list[np.ndarray], total: int) -> tuple[list[np.ndarray], int]:
    """``images`` plus horizontal mirrors of the first ones, up to ``total`` entries."""
    extra = [np.ascontiguousarray(x[..., ::-1]) for x in images[:max(0, total - len(images))]]
    return images + extra, len(extra)


def image_sets(spec, calibration_dir=None, *, max_calibration: int = 32, max_holdout: int = 64,
               required: bool = True) -> ImageSets:
    """Load calibration and held-out images for ``spec``. With ``required=False`` a missing source gives
    empty sets instead of an error (float targets use held-out photos only when they exist)."""
    try:
        calib, hold, source = _paths(calibration_dir, max_calibration)
    except CalibrationError:
        if required or calibration_dir is not None:
            raise
        return ImageSets(source="none")
    if required and len(calib) < MIN_CALIBRATION_IMAGES:
        raise CalibrationError(
            f"{source}: {len(calib)} calibration images, need at least {MIN_CALIBRATION_IMAGES}")
    if required and len(hold) < MIN_HOLDOUT_IMAGES:
        raise CalibrationError(f"{source}: {len(hold)} held-out images, need at least {MIN_HOLDOUT_IMAGES}")
    calib, hold = calib[:max_calibration], hold[:max_holdout]
    arrays, mirrored = _with_mirrors([preprocess_image(p, spec) for p in calib], max_calibration) if required \
        else ([], 0)
    return ImageSets(arrays, [preprocess_image(p, spec) for p in hold], source, mirrored,
                     [str(p) for p in calib] if required else [], [str(p) for p in hold])
