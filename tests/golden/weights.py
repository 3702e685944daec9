"""Deterministic reference-layout weights from (global seed, key, shape), numpy only (PCG64).

scripts/make_golden.py fills a reference implementation's state_dict with these values and records its logits;
tests/test_golden.py regenerates the identical state_dict from the recorded keys and shapes, without the
reference code. Values are float32 (both sides compute in float64 from the same float32 numbers).

BatchNorm statistics are non-trivial on purpose: running_var spread log-uniformly over [1e-4, 2] so that the
BatchNorm eps (1e-5 vs 1e-3) changes the function (a channel with var 1e-4 is scaled 3x apart);
running_mean ~ N(0, 0.2²); γ ~ U[0.5, 1.5]·sqrt(running_var), so each BatchNorm's gain stays near 1 and the
logits of a deep network stay finite and moderate instead of growing by a factor ~100 per layer.
"""

from __future__ import annotations

import hashlib
import math

import numpy as np

VAR_RANGE = (1e-4, 2.0)


def seed_from(seed: int, key: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{seed}:{key}".encode()).digest()[:8], "little")


def _values(key: str, shape: tuple[int, ...], keys: set[str], rng: np.random.Generator) -> np.ndarray:
    leaf = key.rpartition(".")[2]
    module = key.rpartition(".")[0]
    if leaf == "running_var":
        lo, hi = np.log(VAR_RANGE[0]), np.log(VAR_RANGE[1])
        return np.exp(rng.uniform(lo, hi, shape))
    if leaf == "running_mean":
        return rng.normal(0.0, 0.2, shape)
    if len(shape) <= 1:
        if leaf == "bias" or leaf.endswith("bias") or leaf == "beta":
            return rng.normal(0.0, 0.1, shape)
        if f"{module}.running_var" in keys or len(shape) == 1:  # BatchNorm / LayerNorm γ, layer scale
            return rng.uniform(0.5, 1.5, shape)
        return rng.normal(0.0, 0.1, shape)
    fan_in = math.prod(shape[1:])
    return rng.normal(0.0, math.sqrt(2.0 / fan_in), shape)


def generate(seed: int, entries: list[tuple[str, list[int]]]) -> dict[str, np.ndarray]:
    """{key: float32 array} for every (key, shape) entry (floating-point tensors only)."""
    keys = {k for k, _ in entries}
    shapes = dict(entries)
    raw = {key: _values(key, tuple(shape), keys, _rng(seed, key)) for key, shape in entries}
    for key in raw:
        module, _, leaf = key.rpartition(".")
        var = f"{module}.running_var"
        if leaf == "weight" and var in raw and list(shapes[var]) == list(shapes[key]):
            raw[key] = raw[key] * np.sqrt(raw[var])
    return {k: v.astype(np.float32) for k, v in raw.items()}


def _rng(seed: int, key: str) -> np.random.Generator:
    return np.random.default_rng(np.random.PCG64(seed_from(seed, key)))


def inputs(seed: int, shape: tuple[int, ...]) -> np.ndarray:
    """The fixed float64 input batch N(0, 1)."""
    return np.random.default_rng(np.random.PCG64(seed)).standard_normal(shape)
