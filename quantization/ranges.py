"""Activation ranges for static int8 quantization, chosen on the calibration photos.

Backend-neutral: a converter runs its float model on the calibration images and hands every activation tensor
to a ``RangeCollector``; ``ranges()`` then gives one (min, max) per tensor for the backend's own int8 params.

Methods:

* ``minmax``: the exact min / max over all calibration images (``minmax-symmetric``: ±max|x|).
* ``mse`` (default): the asymmetric int8 range [lo, hi] ⊆ [min, max] (always containing 0) that minimises the
  quantization error (rounding + clipping) of the observed values, each image's error relative to that
  image's signal power (so the relative error per image counts, not the few high-energy texture images) —
  a histogram search like PyTorch's HistogramObserver. Chosen over min/max and plain MSE by held-out logit
  SQNR on MobileNetV2 (torchvision weights); the current figures: results/matrix.md.
* ``mse-symmetric``: the same search over symmetric ranges [-a, a] (zero point 0), the only int8 activation
  quantization TensorRT's explicit Q/DQ accepts.

A tensor whose range is known a priori (the network input: normalised pixels) can be pinned with ``fixed``.
"""

from __future__ import annotations

import zlib

import numpy as np

SAMPLES_PER_IMAGE = 16384  # random values kept per tensor and image (plus the exact min/max)
BINS = 2048
CLIP_STEPS = np.linspace(0.1, 1.0, 46)  # candidate fractions of |min| and of max
LEVELS = 255  # int8
# Clipping the top of int8 logits ties every class above the clip at 127, and argmax then picks the lowest
# index: MobileNetV2's logits on held-out photos exceed their maximum on the calibration photos, and held-out
# photos flipped that way. The top of the logits range is left open by this factor instead; the coarser step
# costs a small fraction of a dB of logit SQNR (MobileNetV2).
LOGIT_HEADROOM = 1.5
METHODS = ("mse", "minmax", "mse-symmetric", "minmax-symmetric")


def mse_symmetric_range(values: np.ndarray, amax: float, bins: int = BINS,
                        weights: np.ndarray | None = None) -> tuple[float, float]:
    """The symmetric [-a, a] (zero point 0, 0 < a <= ``amax``) minimising the (weighted) int8 error of ``values``
    with ``q = clip(round(x / s), -128, 127)``, ``s = a / 127`` — what TensorRT's explicit Q/DQ accepts."""
    amax = float(amax)
    if amax <= 0.0:
        return 0.0, 0.0
    counts, edges = np.histogram(values, bins=bins, range=(-amax, amax), weights=weights)
    centers = (edges[:-1] + edges[1:]) / 2.0
    keep = counts > 0
    c, w = centers[keep], counts[keep].astype(np.float64)
    a = (amax * CLIP_STEPS).reshape(-1, 1)
    scale = a / 127.0
    err = (np.clip(np.round(c[None] / scale), -128, 127) * scale - c[None]) ** 2 @ w
    k = int(np.argmin(err))
    return -float(a[k, 0]), float(a[k, 0])


def mse_range(values: np.ndarray, lo: float, hi: float, bins: int = BINS,
              weights: np.ndarray | None = None) -> tuple[float, float]:
    """The [a, b] with lo <= a <= 0 <= b <= hi that minimises the (weighted) int8 quantization MSE of ``values``."""
    lo, hi = min(float(lo), 0.0), max(float(hi), 0.0)
    if hi - lo <= 0.0:
        return lo, hi
    counts, edges = np.histogram(values, bins=bins, range=(lo, hi), weights=weights)
    centers = (edges[:-1] + edges[1:]) / 2.0
    keep = counts > 0
    c, w = centers[keep], counts[keep].astype(np.float64)
    los = np.unique(lo * CLIP_STEPS) if lo < 0 else np.zeros(1)
    his = np.unique(hi * CLIP_STEPS) if hi > 0 else np.zeros(1)
    a, b = np.meshgrid(los, his, indexing="ij")
    a, b = a.reshape(-1, 1), b.reshape(-1, 1)
    scale = np.maximum(b - a, 1e-12) / LEVELS
    zp = np.round(-a / scale)
    q = np.clip(np.round(c[None] / scale) + zp, 0, LEVELS)
    err = ((q - zp) * scale - c[None]) ** 2 @ w
    k = int(np.argmin(err))
    return float(a[k, 0]), float(b[k, 0])


class RangeCollector:
    """Accumulates exact min/max and a random sample of every activation tensor over calibration images."""

    def __init__(self, seed: int = 0, per_image: int = SAMPLES_PER_IMAGE, keep_first: bool = False):
        self.seed = seed
        self.per_image = per_image
        self.keep_first = keep_first
        self.first: dict[str, np.ndarray] = {}  # with keep_first: each tensor's values on the first image
        self.lo: dict[str, float] = {}
        self.hi: dict[str, float] = {}
        self.samples: dict[str, list[np.ndarray]] = {}
        self.weights: dict[str, list[np.ndarray]] = {}

    def add(self, name: str, x: np.ndarray) -> None:
        if self.keep_first and name not in self.first:
            self.first[name] = np.array(x, copy=True)
        x = np.asarray(x, dtype=np.float32).reshape(-1)
        if not x.size:
            return
        self.lo[name] = min(self.lo.get(name, np.inf), float(x.min()))
        self.hi[name] = max(self.hi.get(name, -np.inf), float(x.max()))
        if x.size > self.per_image:
            rng = np.random.default_rng([self.seed, zlib.crc32(name.encode()), len(self.samples.get(name, ()))])
            x = x[rng.integers(0, x.size, self.per_image)]  # per tensor and image: independent of call order
        self.samples.setdefault(name, []).append(x.copy())
        power = float(np.mean(np.square(x, dtype=np.float64)))
        self.weights.setdefault(name, []).append(np.full(x.size, 1.0 / max(power, 1e-12) / x.size))

    def ranges(self, method: str = "mse", fixed: dict[str, tuple[float, float]] | None = None,
               open_top: tuple[str, ...] = ()) -> dict[str, tuple[float, float]]:
        """One (lo, hi) per tensor. ``open_top``: tensors whose top must not clip (the logits: see
        ``LOGIT_HEADROOM``) get ``hi = LOGIT_HEADROOM x`` their calibration maximum."""
        if method not in METHODS:
            raise ValueError(f"unknown range method '{method}' ({', '.join(METHODS)})")
        out = {}
        for name in self.lo:
            lo, hi = self.lo[name], self.hi[name]
            values, weights = np.concatenate(self.samples[name]), np.concatenate(self.weights[name])
            if method == "mse":
                lo, hi = mse_range(values, lo, hi, weights=weights)
            elif method == "mse-symmetric":
                lo, hi = mse_symmetric_range(values, max(-lo, hi), weights=weights)
            elif method == "minmax-symmetric":
                lo, hi = -max(-lo, hi), max(-lo, hi)
            if name in open_top:
                hi = max(hi, LOGIT_HEADROOM * self.hi[name])
            out[name] = (lo, hi)
        out.update(fixed or {})
        return out


def input_range(spec) -> tuple[float, float]:
    """The exact range of a normalised input: pixels in [0, 1] through (x - mean) / std, over all channels."""
    pp = spec.preprocessing
    mean, std = np.asarray(pp.mean, np.float64), np.asarray(pp.std, np.float64)
    return float(np.min((0.0 - mean) / std)), float(np.max((1.0 - mean) / std))
