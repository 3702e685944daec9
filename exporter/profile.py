"""A small op-level profiler over a model's forward pass: MACs, weights and activations per op.

It runs the model once under a TorchDispatchMode and records every aten op that matters for cost:
convolutions, matrix products (linear, matmul, bmm, attention) and elementwise/other ops, attributed to the
innermost nn.Module that issued it. MACs follow the convention of torch's FlopCounterMode ÷ 2 (conv, linear,
matmul/bmm and SDPA counted; BN, activations, pooling, elementwise not), so totals match the reference MACs (results/zoo.md).
Used by ``mobexport info`` (MACs) and by the roofline analysis (bytes moved per layer).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

aten = torch.ops.aten

_MATMUL_OPS = {aten.mm.default, aten.addmm.default, aten.bmm.default, aten.baddbmm.default}
_SDPA_OPS = {
    getattr(aten, n).default
    for n in ("_scaled_dot_product_flash_attention_for_cpu", "_scaled_dot_product_efficient_attention",
              "_scaled_dot_product_flash_attention", "_scaled_dot_product_attention_math")
    if hasattr(aten, n)
}
_SKIP = {"detach", "view", "_unsafe_view", "reshape", "t", "transpose", "permute", "expand", "clone", "empty",
         "alias", "lift_fresh", "_to_copy", "unsqueeze", "squeeze", "select", "slice", "contiguous", "as_strided",
         "split", "split_with_sizes", "chunk", "unbind", "empty_like", "zeros", "ones", "full", "arange",
         "scalar_tensor", "lift_fresh_copy", "copy_", "fill_", "zero_", "sym_size", "sym_stride", "dim",
         "_reshape_alias", "new_empty", "new_zeros", "is_same_size", "_local_scalar_dense", "item"}


@dataclass
class OpRecord:
    layer: str  # qualified name of the innermost module that issued the op ("" = the model itself)
    op: str  # aten op name
    op_type: str  # conv | depthwise | pointwise | fc | matmul | elementwise | pool | other
    macs: int
    weight_elems: int  # parameter elements read by the op
    in_elems: int  # activation elements read (parameters excluded)
    out_elems: int  # elements written

    def to_dict(self) -> dict:
        return asdict(self)


def _numel(x) -> int:
    return x.numel() if isinstance(x, torch.Tensor) else 0


def _storage_id(t: torch.Tensor) -> int:
    try:
        return t.untyped_storage().data_ptr()
    except Exception:
        return -1


class _Recorder(TorchDispatchMode):
    def __init__(self, param_ids: set[int], stack: list[str]):
        super().__init__()
        self.param_ids, self.stack, self.records = param_ids, stack, []

    def _is_param(self, t) -> bool:
        return isinstance(t, torch.Tensor) and t.numel() > 0 and _storage_id(t) in self.param_ids

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        name = func.overloadpacket.__name__
        if name in _SKIP:
            return out
        tensors = [a for a in list(args) + list(kwargs.values()) if isinstance(a, torch.Tensor)]
        for a in args:  # tensor lists (cat, stack)
            if isinstance(a, (list, tuple)):
                tensors += [t for t in a if isinstance(t, torch.Tensor)]
        outs = out if isinstance(out, (list, tuple)) else [out]
        out_elems = sum(_numel(o) for o in outs)
        w = sum(t.numel() for t in tensors if self._is_param(t))
        a_in = sum(t.numel() for t in tensors if not self._is_param(t))
        macs, kind = self._cost(func, name, args, outs)
        self.records.append(OpRecord(self.stack[-1] if self.stack else "", name, kind, macs, w, a_in, out_elems))
        return out

    def _cost(self, func, name, args, outs) -> tuple[int, str]:
        if name == "convolution":
            x, wt = args[0], args[1]
            groups = args[8] if len(args) > 8 else 1
            o = outs[0]
            macs = o.numel() * wt.shape[1] * math.prod(wt.shape[2:])
            cin = x.shape[1]
            if groups == cin and wt.shape[1] == 1 and groups > 1:
                return macs, "depthwise"
            if math.prod(wt.shape[2:]) == 1 and groups == 1:
                return macs, "pointwise"
            return macs, "conv"
        if func in _MATMUL_OPS:
            a, b = (args[1], args[2]) if name in ("addmm", "baddbmm") else (args[0], args[1])
            macs = outs[0].numel() * a.shape[-1]
            return macs, "fc" if (self._is_param(a) or self._is_param(b)) else "matmul"
        if func in _SDPA_OPS:
            q, k, v = args[0], args[1], args[2]
            lq, lk, d, dv = q.shape[-2], k.shape[-2], q.shape[-1], v.shape[-1]
            batch = math.prod(q.shape[:-2])
            return batch * lq * lk * (d + dv), "matmul"
        if "pool" in name or name in ("mean", "sum", "amax"):
            return 0, "pool"
        return 0, "elementwise"


def profile_ops(model: nn.Module, x: torch.Tensor) -> list[OpRecord]:
    """Run ``model(x)`` once (no grad) and return one OpRecord per costed aten op, in execution order."""
    names = {m: n for n, m in model.named_modules()}
    stack: list[str] = []
    hooks = []

    def enter(mod, inp):
        stack.append(names[mod])

    def leave(mod, inp, out):  # must return None: a forward hook's return value replaces the output
        stack.pop()

    for m in names:
        hooks.append(m.register_forward_pre_hook(enter))
        hooks.append(m.register_forward_hook(leave))
    param_ids = {_storage_id(p) for p in model.parameters()} | {_storage_id(b) for b in model.buffers()}
    rec = _Recorder(param_ids, stack)
    try:
        with torch.no_grad(), rec:
            model(x)
    finally:
        for h in hooks:
            h.remove()
    return rec.records


def count_macs(model: nn.Module, input_size: tuple[int, ...], batch: int = 1) -> int:
    x = torch.randn(batch, *input_size)
    return sum(r.macs for r in profile_ops(model.eval(), x))


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
