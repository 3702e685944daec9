"""Empirical bias correction for int8 per-channel weights (Nagel et al., "Data-Free Quantization Through Weight
Equalization and Bias Correction", ICCV 2019, §4.2 — here with the input means measured on calibration photos).

Rounding the weights of one output channel to int8 leaves an error ΔW whose effect on the output is, on
average, ΔW · E[x]. For a depthwise kernel with large, nearly cancelling taps on a smooth input channel (the
BN-folded first depthwise conv of torchvision's MobileNetV2: |w| up to 15, Σw ≈ 0) that average *is* most of
the error, and it is a constant shift that the next ReLU6 and every later layer amplify. Subtracting
ΔW · E[x] from the float bias before the backend quantizes removes it; the weights themselves are untouched.

``ΔW`` uses the rounding every backend here applies to weights: symmetric, per output channel,
``scale = max|w| / 127``, round to nearest. The function returns a corrected *copy* to convert from; the
float model stays the validation reference.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn

MAX_IMAGES = 32


def int8_weight_error(w: torch.Tensor) -> torch.Tensor:
    """Wq - W for symmetric per-output-channel int8 (scale = max|w| / 127)."""
    flat = w.reshape(w.shape[0], -1)
    scale = (flat.abs().amax(dim=1).clamp_min(1e-12) / 127.0).reshape(-1, *([1] * (w.dim() - 1)))
    return torch.clamp(torch.round(w / scale), -127, 127) * scale - w


def _input_means(model: nn.Module, layers: dict[str, nn.Module], images: list[np.ndarray]) -> dict[str, torch.Tensor]:
    sums: dict[str, torch.Tensor] = {}

    def hook(name, channels_last: bool):
        def f(_m, args):
            x = args[0].detach().double()
            if channels_last:  # nn.Linear: features are the last dim, whatever the rank ([B, P, N, C] in ViTs)
                x = x.reshape(-1, x.shape[-1])
            dims = [0, *range(2, x.dim())]
            sums[name] = sums.get(name, 0) + x.sum(dim=dims) / (x.numel() / x.shape[1])
        return f

    handles = [m.register_forward_pre_hook(hook(n, isinstance(m, nn.Linear))) for n, m in layers.items()]
    try:
        with torch.no_grad():
            for x in images:
                model(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)))
    finally:
        for h in handles:
            h.remove()
    return {k: (v / len(images)).float() for k, v in sums.items()}


def _shift(m: nn.Module, mean: torch.Tensor) -> torch.Tensor:
    """E[ΔW · x] per output channel for a Conv2d (any groups) or Linear."""
    dw = int8_weight_error(m.weight.detach())
    if isinstance(m, nn.Linear):
        return dw @ mean
    groups, out = m.groups, dw.shape[0]
    per_group = mean.reshape(groups, -1)  # (g, C/g)
    taps = dw.sum(dim=tuple(range(2, dw.dim())))  # (O, C/g): sum over the kernel window
    return (taps.reshape(groups, out // groups, -1) * per_group[:, None, :]).sum(-1).reshape(out)


@torch.no_grad()
def bias_corrected(model: nn.Module, images: list[np.ndarray]) -> tuple[nn.Module, dict]:
    """A copy of ``model`` whose Conv2d/Linear biases absorb the mean int8 weight-rounding error."""
    if not images:
        raise ValueError("bias correction needs calibration images")
    model = copy.deepcopy(model).eval()
    layers = {n: m for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))}
    means = _input_means(model, layers, images[:MAX_IMAGES])
    changed, largest = 0, 0.0
    for name, m in layers.items():
        if name not in means:
            continue
        shift = _shift(m, means[name])
        if m.bias is None:
            m.bias = nn.Parameter(torch.zeros(m.weight.shape[0], dtype=m.weight.dtype))
        m.bias.data -= shift.to(m.bias.dtype)
        changed += 1
        largest = max(largest, float(shift.abs().max()))
    return model, {"method": "empirical bias correction (int8 weight rounding, calibration input means)",
                   "layers": changed, "max_bias_shift": round(largest, 6), "images": min(len(images), MAX_IMAGES)}
