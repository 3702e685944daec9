"""Scaled weight standardization (Brock, De, Smith, "Characterizing signal propagation to close the performance
gap in unnormalized ResNets", ICLR 2021, arXiv 2101.08692; used by NFNets, arXiv 2102.06171).

``ScaledStdConv2d`` convolves with Ŵ = gain · γ/√fan_in · (W − mean(W)) / √(var(W) + eps), the statistics taken per
output channel over its fan-in (biased variance). ``reparameterize()`` is the structural re-parameterization
of the deploy form: Ŵ is computed once and written into the weight, the gain is dropped and the module is
from then on a plain convolution with bias (the exported graph holds no standardization ops).

Keys: ``weight``, ``bias``, ``gain`` (shape (C_out, 1, 1, 1)) — timm's ScaledStdConv2d names.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .reparam import Reparameterizable


class ScaledStdConv2d(nn.Conv2d, Reparameterizable):
    def __init__(self, in_ch: int, out_ch: int, kernel_size: int = 1, stride: int = 1, groups: int = 1,
                 gamma: float = 1.0, eps: float = 1e-5):
        super().__init__(in_ch, out_ch, kernel_size, stride, kernel_size // 2, groups=groups, bias=True)
        self.gain = nn.Parameter(torch.ones(out_ch, 1, 1, 1))
        self.scale = gamma * self.weight[0].numel() ** -0.5  # γ / √fan_in
        self.eps = eps

    def standardized_weight(self) -> torch.Tensor:
        # each output channel's fan-in is one "feature" of a batch-statistics BatchNorm over a (1, C_out, fan_in)
        # view: (w - mean) / sqrt(biased var + eps) · gain·scale, in one fused op
        w = F.batch_norm(self.weight.reshape(1, self.out_channels, -1), None, None,
                         (self.gain * self.scale).reshape(-1), None, training=True, momentum=0.0, eps=self.eps)
        return w.reshape_as(self.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.weight if self.deployed else self.standardized_weight()
        return F.conv2d(x, weight, self.bias, self.stride, self.padding, self.dilation, self.groups)

    @torch.no_grad()
    def reparameterize(self) -> None:
        if self.deployed:
            return
        self.weight.copy_(self.standardized_weight())
        del self.gain
        self._mark_deployed()
