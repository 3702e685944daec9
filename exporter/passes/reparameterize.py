"""reparameterize: merge every multi-branch block, then fold BatchNorm. Works on any ``nn.Module``.

A block is re-parameterized when it implements our protocol (``Reparameterizable``, method "protocol") or, for
user code we did not write, when its class defines one of the zero-argument methods used by the MobileOne /
RepVGG / ACNet / YOLO code bases: ``reparameterize()``, ``switch_to_deploy()`` or ``fuse()`` (first found, in
that order). Each block is called once, outermost first (an outer block may merge or remove its children); torch's
own modules (classes defined in ``torch.*``) are never called. A user method that raises becomes a
``ConversionError`` (step ``reparameterize``) naming the module and the method.

Postconditions: no Reparameterizable left undeployed, no BatchNorm module left. In place, idempotent, keeps
dtype and device. ``report`` (optional dict) receives ``reparameterized`` ([{"module", "method"}]) plus the
entries of ``fold_batchnorm``.
"""

from __future__ import annotations

import inspect

import torch
from torch import nn

from ..errors import ConversionError, InvariantError, MobexportError, UsageError
from ..layers.reparam import Reparameterizable
from .fold_batchnorm import fold_batchnorm

USER_METHODS = ("reparameterize", "switch_to_deploy", "fuse")
_DONE = "_mobexport_reparameterized"  # set on a user module once its method ran: call it only once


def undeployed(model: nn.Module) -> list[str]:
    return [n for n, m in model.named_modules() if isinstance(m, Reparameterizable) and not m.deployed]


def _zero_arg(fn) -> bool:
    try:
        params = list(inspect.signature(fn).parameters.values())[1:]  # drop self
    except (TypeError, ValueError):
        return False
    return all(p.default is not p.empty or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in params)


def user_method(module: nn.Module) -> str | None:
    """The re-parameterization method a user module's class defines, or None (torch's own classes: None)."""
    cls = type(module)
    if cls.__module__ == "torch" or cls.__module__.startswith("torch."):
        return None
    for name in USER_METHODS:
        fn = getattr(cls, name, None)  # the class, not the instance: a submodule called ``fuse`` is no method
        if inspect.isfunction(fn) and _zero_arg(fn):
            return name
    return None


def _next_block(model: nn.Module) -> tuple[str, nn.Module, str] | None:
    """The outermost block still to re-parameterize: (name, module, method)."""
    for name, m in model.named_modules():
        if isinstance(m, Reparameterizable):
            if not m.deployed:
                return name, m, "protocol"
        elif not getattr(m, _DONE, False) and (method := user_method(m)):
            return name, m, method
    return None


def _call(name: str, module: nn.Module, method: str) -> None:
    attr = "reparameterize" if method == "protocol" else method
    label = f"module '{name or '<root>'}' ({type(module).__name__})"
    try:
        getattr(module, attr)()
    except MobexportError:
        raise
    except Exception as exc:
        raise ConversionError(f"{label}: {type(module).__name__}.{attr}() raised {type(exc).__name__}: {exc}",
                              step="reparameterize",
                              hint=f"fix {attr}() or re-parameterize the model yourself before exporting") from exc
    if method == "protocol" and not module.deployed:
        raise InvariantError(f"{label}: reparameterize() did not mark itself deployed")
    if method != "protocol":
        object.__setattr__(module, _DONE, True)


@torch.no_grad()
def reparameterize(model: nn.Module, report: dict | None = None) -> nn.Module:
    """In place; returns ``model``. Fills ``report`` (if given) as described in the module doc."""
    if not isinstance(model, nn.Module):
        raise UsageError(f"reparameterize expects an nn.Module, got {type(model).__name__}")
    report = report if report is not None else {}
    done = report.setdefault("reparameterized", [])
    was_training = model.training
    model.eval()
    # Re-walk after every call because the module tree is being rewritten.
    while (block := _next_block(model)) is not None:
        _call(*block)
        done.append({"module": block[0], "method": block[2]})
    fold_batchnorm(model, report)
    left = undeployed(model)
    if left:
        raise InvariantError(f"reparameterize: blocks left undeployed: {left[:5]}")
    model.train(was_training)
    return model
