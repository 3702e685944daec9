"""fold_batchnorm: fold every BatchNorm into the conv/linear before it; a BN with no such conv becomes a
ChannelAffine (x·scale + shift). Postcondition: no BatchNorm module remains. In place, idempotent, keeps
dtype and device.

Works on any ``nn.Module``, not only ours, in three steps:

1. ``ConvNormAct`` (our layer) folds itself.
2. The remaining Conv/Linear → BatchNorm pairs are found by *analysing* a ``torch.fx.symbolic_trace`` of the
   model: a BN whose only input is the output of a Conv1d/2d/3d or Linear that nothing else reads, each module
   called once and registered once, is folded into that conv **on the original modules** (the conv gets the
   folded weight and bias, the BN is replaced by ``nn.Identity`` in its parent). The user's classes stay; the
   traced graph is thrown away. If the model cannot be traced (data-dependent control flow, …), adjacent
   [Conv|Linear, BatchNorm] pairs inside ``nn.Sequential`` containers are folded instead.
3. Every BN left (no conv in front, e.g. after a residual add) becomes a ``ChannelAffine`` and is reported.

``report`` (optional dict) receives JSON-serialisable entries: ``folded`` ([{"batchnorm", "into"}]),
``affine`` ([BN names]) and ``fx`` ("traced", "not traceable: <reason>", or "not needed: …" when no BN was
left for it to find).
"""

from __future__ import annotations

from collections import Counter

import torch
from torch import nn

from ..errors import ConversionError, InvariantError
from ..layers.conv import ChannelAffine, ConvNormAct, fuse_conv_bn

_BN = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
_FOLDS_INTO = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)


def bn_modules(model: nn.Module) -> list[str]:
    return [n for n, m in model.named_modules() if isinstance(m, _BN)]


def _out_channels(layer: nn.Module) -> int:
    return layer.out_features if isinstance(layer, nn.Linear) else layer.out_channels


def _can_fold(layer: nn.Module, bn: nn.Module) -> bool:
    return (isinstance(layer, _FOLDS_INTO) and isinstance(bn, _BN) and bn.running_var is not None
            and _out_channels(layer) == bn.num_features)


@torch.no_grad()
def _fold_into(layer: nn.Module, bn: nn.Module) -> None:
    """layer(x) → bn  ==  layer'(x): write the folded weight/bias into ``layer`` (same dtype and device)."""
    w, b = fuse_conv_bn(layer.weight, layer.bias, bn)
    if layer.bias is None:
        layer.bias = nn.Parameter(torch.zeros_like(b))
    layer.weight.copy_(w)
    layer.bias.copy_(b)


def _replace(model: nn.Module, old: nn.Module, new_factory) -> None:
    """Replace every registration of ``old`` (it may sit under several parents) by ``new_factory()``."""
    new = None
    for parent in list(model.modules()):
        for child_name, child in list(parent._modules.items()):
            if child is old:
                new = new if new is not None else new_factory()
                parent._modules[child_name] = new


def _fold_convnormact(model: nn.Module) -> list[dict]:
    folded = []
    for name, m in list(model.named_modules()):
        if isinstance(m, ConvNormAct) and not m.deployed:
            if isinstance(m.bn, _BN):
                folded.append({"batchnorm": _join(name, "bn"), "into": _join(name, "conv")})
            m.reparameterize()
    return folded


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _fold_sequentials(model: nn.Module) -> list[dict]:
    """Fold adjacent [Conv|Linear, BatchNorm] pairs inside every nn.Sequential (the fallback without fx)."""
    folded = []
    for prefix, seq in list(model.named_modules()):
        if not isinstance(seq, nn.Sequential):
            continue
        names = list(seq._modules)
        for a, b in zip(names, names[1:], strict=False):
            first, second = seq._modules[a], seq._modules[b]
            if _can_fold(first, second):
                _fold_into(first, second)
                seq._modules[b] = nn.Identity()
                folded.append({"batchnorm": _join(prefix, b), "into": _join(prefix, a)})
    return folded


def trace_pairs(model: nn.Module) -> tuple[list[tuple[str, str]], str]:
    """(BN name, conv name) pairs that fold exactly, from a symbolic trace; and "traced" or why not."""
    try:
        graph = torch.fx.symbolic_trace(model).graph
    except Exception as exc:  # any failure to trace means "use the fallback", never a failed pass
        reason = (str(exc).strip().splitlines() or [""])[0][:200]
        return [], f"not traceable: {type(exc).__name__}: {reason}"
    calls = Counter(n.target for n in graph.nodes if n.op == "call_module")
    registered = Counter(id(m) for _, m in model.named_modules(remove_duplicate=False))
    pairs = []
    for node in graph.nodes:
        src = node.args[0] if node.op == "call_module" and len(node.args) == 1 and not node.kwargs else None
        if not (isinstance(src, torch.fx.Node) and src.op == "call_module" and len(src.users) == 1):
            continue
        bn, layer = model.get_submodule(node.target), model.get_submodule(src.target)
        once = calls[node.target] == calls[src.target] == 1 and registered[id(bn)] == registered[id(layer)] == 1
        if once and _can_fold(layer, bn):
            pairs.append((node.target, src.target))
    return pairs, "traced"


def _fold_traced(model: nn.Module, pairs: list[tuple[str, str]]) -> list[dict]:
    folded = []
    for bn_name, layer_name in pairs:
        bn = model.get_submodule(bn_name)
        _fold_into(model.get_submodule(layer_name), bn)
        _replace(model, bn, nn.Identity)
        folded.append({"batchnorm": bn_name, "into": layer_name})
    return folded


def _to_affine(model: nn.Module) -> list[str]:
    names = []
    for name, bn in list(model.named_modules()):
        if not isinstance(bn, _BN):
            continue
        if bn.running_var is None:
            raise ConversionError(
                f"BatchNorm '{name}' has no running statistics (track_running_stats=False): it normalises with "
                "batch statistics at inference and cannot be folded", step="fold_batchnorm",
                hint="build the BatchNorm with track_running_stats=True (the default) and train or calibrate it")
        _replace(model, bn, lambda bn=bn: ChannelAffine.from_bn(bn))
        names.append(name)
    return names


@torch.no_grad()
def fold_batchnorm(model: nn.Module, report: dict | None = None) -> nn.Module:
    """In place; returns ``model``. Idempotent. Fills ``report`` (if given) as described in the module doc."""
    report = report if report is not None else {}
    folded = _fold_convnormact(model)
    if bn_modules(model):
        pairs, report["fx"] = trace_pairs(model)
        folded += _fold_traced(model, pairs) if report["fx"] == "traced" else _fold_sequentials(model)
    else:
        report["fx"] = "not needed: no BatchNorm outside ConvNormAct"
    report.setdefault("folded", []).extend(folded)
    # what is left has no conv in front of it: replace by a per-channel affine
    report.setdefault("affine", []).extend(_to_affine(model))
    left = bn_modules(model)
    if left:
        raise InvariantError(f"fold_batchnorm: BatchNorm left after folding: {left[:5]}")
    return model
