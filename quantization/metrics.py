"""Fidelity metrics between a reference output (PyTorch) and an artifact's output. Plain numpy, batch-aware:
arrays are (N, classes) or any shape whose first axis is the sample axis."""

from __future__ import annotations

import numpy as np


def _pair(ref, out) -> tuple[np.ndarray, np.ndarray]:
    r = np.asarray(ref, dtype=np.float64)
    o = np.asarray(out, dtype=np.float64)
    if r.shape != o.shape:
        raise ValueError(f"shape mismatch: reference {r.shape} vs output {o.shape}")
    return r, o


def max_abs(ref, out) -> float:
    r, o = _pair(ref, out)
    return float(np.max(np.abs(r - o))) if r.size else 0.0


def mean_abs(ref, out) -> float:
    r, o = _pair(ref, out)
    return float(np.mean(np.abs(r - o))) if r.size else 0.0


def output_range(ref) -> float:
    """max(ref) - min(ref): the scale tolerances are relative to."""
    r = np.asarray(ref, dtype=np.float64)
    return float(r.max() - r.min()) if r.size else 0.0


def cosine(ref, out) -> float:
    """Mean over samples of the cosine similarity of the flattened outputs (1.0 for two zero vectors)."""
    r, o = _pair(ref, out)
    r, o = r.reshape(len(r), -1), o.reshape(len(o), -1)
    num = np.sum(r * o, axis=1)
    den = np.linalg.norm(r, axis=1) * np.linalg.norm(o, axis=1)
    cos = np.where(den > 0, num / np.where(den > 0, den, 1.0), np.where(np.all(r == o, axis=1), 1.0, 0.0))
    return float(np.mean(cos))


def sqnr_db(ref, out) -> float:
    """Signal-to-quantization-noise ratio 10·log10(Σref² / Σ(ref-out)²) in dB (inf when identical)."""
    r, o = _pair(ref, out)
    noise = float(np.sum((r - o) ** 2))
    signal = float(np.sum(r**2))
    if noise == 0.0:
        return float("inf")
    if signal == 0.0:
        return float("-inf")
    return float(10.0 * np.log10(signal / noise))


def top1_agreement(ref, out) -> float:
    """Fraction of samples whose arg-max class is the same."""
    r, o = _pair(ref, out)
    r, o = r.reshape(len(r), -1), o.reshape(len(o), -1)
    return float(np.mean(np.argmax(r, axis=1) == np.argmax(o, axis=1))) if len(r) else 1.0


def all_metrics(ref, out) -> dict[str, float]:
    return {"max_abs": max_abs(ref, out), "mean_abs": mean_abs(ref, out), "cosine": cosine(ref, out),
            "sqnr_db": sqnr_db(ref, out), "top1_agreement": top1_agreement(ref, out),
            "output_range": output_range(ref)}
