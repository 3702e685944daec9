"""Per-layer int8 sensitivity: quantize one layer at a time (in PyTorch) and measure how much the logits lose.

For every Conv2d / Linear of the deploy model: weights fake-quantized to int8 per output channel (symmetric)
and the layer's output fake-quantized to int8 per tensor (asymmetric, range from the calibration images);
everything else stays float. The SQNR of the logits on the held-out photos ranks the layers; the lowest are
the ones worth keeping in higher precision. Backend-independent by design: it explains an int8 artifact's
error budget, it does not reproduce a particular backend's kernels.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .metrics import sqnr_db

MAX_CALIBRATION = 16
MAX_HOLDOUT = 8


def _fq_weight(w: torch.Tensor) -> torch.Tensor:
    flat = w.reshape(w.shape[0], -1)
    scale = (flat.abs().amax(dim=1).clamp_min(1e-12) / 127.0).reshape(-1, *([1] * (w.dim() - 1)))
    return torch.clamp(torch.round(w / scale), -127, 127) * scale


def _fq_act(y: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    scale = max(hi - lo, 1e-12) / 255.0
    zp = round(-lo / scale) - 128
    q = torch.clamp(torch.round(y / scale) + zp, -128, 127)
    return (q - zp) * scale


def _ranges(model: nn.Module, layers: dict[str, nn.Module], calib: torch.Tensor) -> dict[str, tuple]:
    ranges: dict[str, list[float]] = {}

    def hook(name):
        def f(_m, _i, y):
            lo, hi = float(y.min()), float(y.max())
            r = ranges.setdefault(name, [lo, hi])
            r[0], r[1] = min(r[0], lo), max(r[1], hi)
        return f

    handles = [m.register_forward_hook(hook(n)) for n, m in layers.items()]
    try:
        model(calib)
    finally:
        for h in handles:
            h.remove()
    return {k: tuple(v) for k, v in ranges.items()}


@torch.no_grad()
def layer_sensitivity(model: nn.Module, calibration: list[np.ndarray], holdout: list[np.ndarray],
                      top: int = 10) -> dict:
    """{"method", "layers": [{layer, type, sqnr_db}] (worst first, ``top`` of them), "all_layers": n}."""
    model = model.eval()
    layers = {n: m for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))}
    calib = torch.from_numpy(np.concatenate(calibration[:MAX_CALIBRATION]))
    hold = torch.from_numpy(np.concatenate(holdout[:MAX_HOLDOUT]))
    ranges = _ranges(model, layers, calib)
    ref = model(hold).numpy()
    rows = []
    for name, m in layers.items():
        w = m.weight.data.clone()
        m.weight.data = _fq_weight(w)
        lo, hi = ranges[name]
        h = m.register_forward_hook(lambda _m, _i, y, lo=lo, hi=hi: _fq_act(y, lo, hi))
        try:
            out = model(hold).numpy()
        finally:
            h.remove()
            m.weight.data = w
        rows.append({"layer": name, "type": type(m).__name__, "sqnr_db": round(sqnr_db(ref, out), 2)})
    rows.sort(key=lambda r: r["sqnr_db"])
    return {"method": "one layer at a time: int8 per-channel weights + int8 per-tensor output (torch fake-quant); "
                      "logit SQNR on held-out photos",
            "all_layers": len(rows), "layers": rows[:top]}
