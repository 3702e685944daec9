"""reparameterize: merge every multi-branch block (the Reparameterizable protocol), then fold BatchNorm.

Postconditions: no Reparameterizable left undeployed, no BatchNorm module left. In place, idempotent.
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import InvariantError
from ..layers.reparam import Reparameterizable
from .fold_batchnorm import fold_batchnorm


def undeployed(model: nn.Module) -> list[str]:
    return [n for n, m in model.named_modules() if isinstance(m, Reparameterizable) and not m.deployed]


@torch.no_grad()
def reparameterize(model: nn.Module) -> nn.Module:
    was_training = model.training
    model.eval()
    # Outermost first: a multi-branch block merges its own branches (which may be ConvNormAct).
    # Re-walk after every change because the module tree is being rewritten.
    for _ in range(100_000):
        todo = [m for m in model.modules() if isinstance(m, Reparameterizable) and not m.deployed]
        if not todo:
            break
        todo[0].reparameterize()
        if not todo[0].deployed:
            raise InvariantError(f"{type(todo[0]).__name__}.reparameterize() did not mark itself deployed")
    fold_batchnorm(model)
    left = undeployed(model)
    if left:
        raise InvariantError(f"reparameterize: blocks left undeployed: {left[:5]}")
    model.train(was_training)
    return model
