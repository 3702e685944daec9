"""Cross-layer equalization across *linear* connections (Nagel et al., "Data-Free Quantization Through Weight
Equalization and Bias Correction", ICCV 2019, §4.1), with the scale balancing activation and weight ranges.

For ``y = W2 · (W1 x + b1)`` a per-channel ``s > 0`` gives the same function with ``W1' = W1 / s``,
``b1' = b1 / s`` and ``W2' = W2 · s`` (on W2's input channels). Through a ReLU the identity still holds
(positive homogeneity) but **not through ReLU6 / hard-swish / SiLU**: ``ReLU6(y / s) ≠ ReLU6(y) / s`` as
soon as ``y > 6`` on any channel, and TFLite / TensorRT have no per-channel clamp to absorb it. MobileNetV2
and EfficientNet-Lite have ReLU6 after every expand and depthwise conv, so the only exact places are the
*linear bottlenecks*: a projection conv (no activation) → the next expand conv (or the head conv). Where the
bottleneck is a residual stream, every tensor joined by ``add`` shares the scale: all producers (projection
convs) divide, all consumers (expand / head / depthwise convs, Linear) multiply.

Why it helps int8 even with per-channel weights: the stream tensor is quantized *per tensor*, and a few
channels with a wide range set its step for all. ``s_i = sqrt(a_i / w_i)`` (``a_i``: max |x_i| over the
stream on calibration photos, ``w_i``: max |W_c[:, i]| over the consumers) makes both ranges
``sqrt(a_i w_i)`` — the activation gets flatter, the consumers' per-output-channel weight ranges stay
balanced; the producers' per-output-channel weights are unaffected by their own scaling.

Groups are found on a ``torch.fx`` trace of the deploy model (Identity / Dropout are transparent). A group
with any other user (pooling, an activation, the graph output) is left alone; a model fx cannot trace gets no
equalization (recorded). The result is checked: the equalized copy must match the float model to
``RTOL`` on the calibration photos, otherwise the original is returned.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

RTOL = 1e-5  # max |Δ| / max |y| of the logits, equalized vs original
SCALE_CLAMP = (1e-3, 1e3)
_TRANSPARENT = (nn.Identity, nn.Dropout)


@dataclass
class Group:
    producers: list[str] = field(default_factory=list)  # module names (Conv2d / Linear), output channels scaled 1/s
    consumers: list[str] = field(default_factory=list)  # module names, input channels scaled s
    tensors: list[str] = field(default_factory=list)  # fx node names of every tensor of the stream


def _source(node, modules):
    """Follow transparent modules back to the node that really computes the value."""
    while node.op == "call_module" and isinstance(modules[node.target], _TRANSPARENT):
        node = node.args[0]
    return node


def _users(node, modules) -> list:
    """Real users of ``node`` (through transparent modules)."""
    out = []
    for u in node.users:
        if u.op == "call_module" and isinstance(modules[u.target], _TRANSPARENT):
            out += _users(u, modules)
        else:
            out.append(u)
    return out


def _is_add(node) -> bool:
    import operator

    return node.op == "call_function" and node.target in (operator.add, torch.add) and len(node.args) == 2


def _linear_module(node, modules) -> nn.Module | None:
    m = modules.get(node.target) if node.op == "call_module" else None
    return m if isinstance(m, (nn.Conv2d, nn.Linear)) else None


def _consumer_ok(node, modules, width: int) -> bool:
    m = _linear_module(node, modules)
    if m is None or node.args[0] is None:
        return False
    if isinstance(m, nn.Linear):
        return m.in_features == width
    return m.in_channels == width and (m.groups == 1 or m.groups == m.in_channels == m.out_channels)


def _group_of(start, modules, seen: set) -> Group | None:
    """The stream containing producer ``start`` (a conv output node), or None if it is not purely linear."""
    group, todo, ok = Group(), [start], True
    width = _linear_module(start, modules).weight.shape[0]
    while todo:
        node = todo.pop()
        if node.name in seen:
            continue
        seen.add(node.name)
        group.tensors.append(node.name)
        if _is_add(node):
            todo += [_source(a, modules) for a in node.args if hasattr(a, "op")]
            if len([a for a in node.args if hasattr(a, "op")]) != 2:
                ok = False
        elif _linear_module(node, modules) is not None and _linear_module(node, modules).weight.shape[0] == width:
            group.producers.append(node.target)
        else:
            ok = False
        for u in _users(node, modules):
            if _is_add(u):
                todo.append(u)
            elif _consumer_ok(u, modules, width) and _source(u.args[0], modules) is node:
                group.consumers.append(u.target)
            else:
                ok = False
    return group if ok and group.consumers else None


def _trace(model: nn.Module):
    """fx GraphModule of ``model``; a submodule fx cannot trace on its own (shape-dependent code such as
    TF-SAME padding) stays one opaque leaf, so streams touching it are simply not equalized."""
    import torch.fx as fx

    opaque: set[int] = set()

    class Tracer(fx.Tracer):
        def is_leaf_module(self, m, qualname):
            return id(m) in opaque or super().is_leaf_module(m, qualname)

    for m in reversed(list(model.modules())):  # children before parents: only the innermost culprit is opaque
        if m is model or type(m).__module__.startswith("torch.nn"):
            continue
        try:
            Tracer().trace(m)
        except Exception:  # fx raises TraceError, TypeError, ... for untraceable code
            opaque.add(id(m))

    return fx.GraphModule(model, Tracer().trace(model))


def find_groups(model: nn.Module) -> list[Group]:
    """Linear streams of ``model`` (see module docstring); raises whatever torch.fx raises if untraceable."""
    gm = _trace(model)
    modules = dict(gm.named_modules())
    groups, seen = [], set()
    for node in gm.graph.nodes:
        if node.name not in seen and _linear_module(node, modules) is not None:
            g = _group_of(node, modules, seen)
            if g is not None:
                groups.append(g)
    return groups


def _channel_maxima(model: nn.Module, groups: list[Group], images: list[np.ndarray]) -> list[torch.Tensor]:
    """max |x_c| per channel over every tensor of each group and every image."""
    import torch.fx as fx

    gm = _trace(model)
    where = {t: k for k, g in enumerate(groups) for t in g.tensors}
    maxima: list[torch.Tensor | None] = [None] * len(groups)

    class Recorder(fx.Interpreter):
        def run_node(self, n):
            out = super().run_node(n)
            if n.name in where:
                k = where[n.name]
                dims = [d for d in range(out.dim()) if d != 1] if out.dim() > 2 else [0]
                m = out.detach().abs().amax(dim=dims)
                maxima[k] = m if maxima[k] is None else torch.maximum(maxima[k], m)
            return out

    with torch.no_grad():
        for x in images:
            Recorder(gm).run(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)))
    return maxima


def _input_channel_max(m: nn.Module) -> torch.Tensor:
    w = m.weight.detach().abs()
    if isinstance(m, nn.Conv2d) and m.groups > 1:  # depthwise: input channel i is output channel i
        return w.reshape(w.shape[0], -1).amax(dim=1)
    return w.transpose(0, 1).reshape(w.shape[1], -1).amax(dim=1)


@torch.no_grad()
def _apply(model: nn.Module, group: Group, s: torch.Tensor) -> None:
    mods = dict(model.named_modules())
    for name in group.producers:
        m = mods[name]
        shape = (-1,) + (1,) * (m.weight.dim() - 1)
        m.weight.div_(s.reshape(shape).to(m.weight.dtype))
        if m.bias is not None:
            m.bias.div_(s.to(m.bias.dtype))
    for name in group.consumers:
        m = mods[name]
        if isinstance(m, nn.Conv2d) and m.groups > 1:
            m.weight.mul_(s.reshape(-1, 1, 1, 1).to(m.weight.dtype))
        else:
            shape = (1, -1) + (1,) * (m.weight.dim() - 2)
            m.weight.mul_(s.reshape(shape).to(m.weight.dtype))


def _scales(act: torch.Tensor, wmax: torch.Tensor, alpha: float) -> torch.Tensor:
    act, wmax = act.double().clamp_min(1e-8), wmax.double().clamp_min(1e-8)
    s = act.pow(alpha) / wmax.pow(1.0 - alpha)
    s = s / torch.exp(torch.log(s).mean())  # geometric mean 1: keeps magnitudes where they were
    return s.clamp(*SCALE_CLAMP).float()


def _max_rel_error(a: nn.Module, b: nn.Module, images: list[np.ndarray]) -> float:
    worst = 0.0
    with torch.no_grad():
        for x in images:
            t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
            ya, yb = a(t), b(t)
            worst = max(worst, float((ya - yb).abs().max() / ya.abs().max().clamp_min(1e-12)))
    return worst


def equalized(model: nn.Module, images: list[np.ndarray], alpha: float = 0.5,
              max_images: int = 32) -> tuple[nn.Module, dict]:
    """A copy of ``model`` with every linear stream equalized (the float model itself is untouched)."""
    if not images:
        raise ValueError("equalization needs calibration images")
    images = images[:max_images]
    try:
        groups = find_groups(model)
    except Exception as e:  # torch.fx raises several types for untraceable code
        return model, {"method": "cross-layer equalization", "groups": 0,
                       "skipped": f"torch.fx cannot trace the model: {type(e).__name__}"}
    if not groups:
        return model, {"method": "cross-layer equalization", "groups": 0, "skipped": "no linear streams"}
    out = copy.deepcopy(model).eval()
    mods = dict(out.named_modules())
    maxima = _channel_maxima(out, groups, images)
    for g, act in zip(groups, maxima, strict=True):
        wmax = torch.stack([_input_channel_max(mods[c]) for c in g.consumers]).amax(dim=0)
        _apply(out, g, _scales(act, wmax, alpha))
    err = _max_rel_error(model, out, images[:4])
    info = {"method": f"cross-layer equalization of linear streams (s = a^{alpha:g} / w^{1 - alpha:g})",
            "groups": len(groups), "producers": sum(len(g.producers) for g in groups),
            "consumers": sum(len(g.consumers) for g in groups), "max_rel_error": float(f"{err:.3g}")}
    if not err <= RTOL:
        return model, {**info, "skipped": f"equalized model differs by {err:.3g} > {RTOL:g}; not used"}
    return out, info
