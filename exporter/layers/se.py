"""Squeeze-and-Excitation (Hu et al., 2018) with a configurable reduced width, inner activation and gate.

Also home of ``make_act``: the one place that turns an activation name ("relu", "relu6", "hswish", "hsigmoid",
"sigmoid", "silu", "gelu", None) or a module factory into a fresh ``nn.Module``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from ..errors import UsageError
from .conv import make_divisible

ActSpec = str | Callable[[], nn.Module] | None

_ACTS: dict[str, Callable[[], nn.Module]] = {
    "relu": lambda: nn.ReLU(inplace=True),
    "relu6": lambda: nn.ReLU6(inplace=True),
    "hswish": lambda: nn.Hardswish(inplace=True),
    "hsigmoid": lambda: nn.Hardsigmoid(inplace=True),
    "sigmoid": nn.Sigmoid,
    "silu": lambda: nn.SiLU(inplace=True),
    "swish": lambda: nn.SiLU(inplace=True),
    "gelu": nn.GELU,
    "identity": nn.Identity,
}


def make_act(act: ActSpec) -> nn.Module:
    """A new activation module for a name, a factory (class or callable) or None (identity)."""
    if act is None:
        return nn.Identity()
    if isinstance(act, str):
        if act.lower() not in _ACTS:
            raise UsageError(f"unknown activation '{act}' (known: {', '.join(sorted(_ACTS))})")
        return _ACTS[act.lower()]()
    return act()


class SqueezeExcite(nn.Module):
    """x · gate(expand(act(reduce(mean_hw(x))))), with 1×1 convs with bias.

    Keys: ``reduce.{weight,bias}``, ``expand.{weight,bias}``. ``reduced`` is the bottleneck width; or pass
    ``ratio`` (and ``divisor``) to derive it as make_divisible(channels·ratio, divisor) (MobileNetV3 rule).
    """

    def __init__(self, channels: int, reduced: int | None = None, *, ratio: float | None = None,
                 divisor: int = 8, act: ActSpec = "relu", gate: ActSpec = "sigmoid"):
        super().__init__()
        if reduced is None:
            if ratio is None:
                raise UsageError("SqueezeExcite needs `reduced` or `ratio`")
            reduced = make_divisible(channels * ratio, divisor)
        self.channels, self.reduced = channels, reduced
        self.reduce = nn.Conv2d(channels, reduced, 1, bias=True)
        self.act = make_act(act)
        self.expand = nn.Conv2d(reduced, channels, 1, bias=True)
        self.gate = make_act(gate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean((2, 3), keepdim=True)
        return x * self.gate(self.expand(self.act(self.reduce(s))))
