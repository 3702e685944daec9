"""Loss-aware activation ranges (opt-in, ``--range-search``): each int8 range chosen for what it does to the
class scores, not to its own tensor.

``ranges.mse`` picks every tensor's range to minimise that tensor's own quantization error. That is the wrong
objective where a tensor's noise is amplified downstream or its outliers barely matter: on MobileNetV2
(torchvision weights) quantizing the stem output alone with its MSE range [0, 3.75] costs 24.7 dB logit SQNR
(a quarter of all activation error — the next depthwise conv has large, nearly cancelling taps), while
[0, 2.25] costs 28.8 dB; the last residual add's MSE range ±15.7 gives 27.6 dB where ±4.7 gives 36.8 dB.
Minimising the logits' squared error instead clips outliers that carry the top class (SQNR up, top-1
agreement down), so the objective is the KL divergence of the softmax, which weighs the top classes.

Search (on a simulation in PyTorch, then handed to the backend):

1. The int8 source model is traced with ``torch.fx``; its *quantization points* are the tensors every int8
   backend here quantizes: each conv / linear output after the ReLU / ReLU6 fused into it, adds, and every
   other computing op (shape-only ops share their input's quantization and are skipped). Weights are rounded
   to int8 per output channel (symmetric, like the backends).
2. Start from the per-tensor ``mse`` ranges (``mse-symmetric`` for TensorRT). Measure every point's own share
   of the KL (that point quantized alone); the ``MAX_POINTS`` largest are searched.
3. In graph order, each searched point's range is scaled by each of ``FACTORS`` with *all* points quantized,
   and the factor with the least KL over ``SEARCH_IMAGES`` calibration photos is kept if it beats the current
   range by at least ``MIN_GAIN`` relative and ``MIN_KL_GAIN`` absolute (on flat logits the differences are
   noise). The logits' own range
   is never searched (its top stays open, ``ranges.LOGIT_HEADROOM``).
4. The backend matches its own tensors to changed points by their *values* on the first calibration image
   (sorted, so layout — NCHW / NHWC / transposes — does not matter) and replaces only those ranges.

Measured with ``scripts/int8_agreement.py --range-search`` (every held-out photo x 5 crops x mirror; SQNR and
top-1 agreement with float, plain vs searched; its table is in the README's int8 section). It helps where a few tensors dominate the error (MobileNetV2's
stem) and does nothing measurable where the error is spread out (EfficientNet-Lite0; before the ``MIN_GAIN``
floor it took sub-1% gains on the search photos there and cost SQNR). Top-1 agreement moves by a few points
between range choices of equal SQNR, so no agreement figure here is an effect of the search. Hence opt-in and
labelled experimental. Its cost grows with the points searched (one partial pass per point plus
``MAX_POINTS x len(FACTORS)``; each pass re-runs only the graph from the point on). A model torch.fx cannot trace keeps its ranges; the report says so.
"""

from __future__ import annotations

import copy
import operator
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

SEARCH_IMAGES = 8
MAX_POINTS = 16
FACTORS = (0.25, 0.35, 0.45, 0.55, 0.65, 0.8, 1.0, 1.2)
MIN_GAIN = 0.01  # least relative KL reduction for a factor to replace the current range ...
MIN_KL_GAIN = 1e-6  # ... and least absolute one, in nats per image
MATCH_RTOL = 1e-3  # sorted-value agreement (relative to max |x|) for a backend tensor to be a point
_FUSED = (nn.ReLU, nn.ReLU6, nn.Identity, nn.Dropout)  # folded into the conv before them by every backend
_SHAPE_METHODS = {"view", "reshape", "flatten", "permute", "transpose", "contiguous", "size", "dim", "squeeze",
                  "unsqueeze", "expand", "chunk", "split", "unbind", "__getitem__", "to", "float", "type_as"}
_SHAPE_FUNCTIONS = {torch.flatten, torch.reshape, torch.permute, torch.transpose, torch.squeeze,
                    torch.unsqueeze, torch.chunk, torch.split, torch.unbind, operator.getitem, getattr}


@dataclass
class RangePlan:
    """Searched ranges by point, and what a backend needs to find its tensors among them."""

    ranges: dict[str, tuple[float, float]] = field(default_factory=dict)
    signatures: dict[str, np.ndarray] = field(default_factory=dict)  # point -> sorted values, first image
    report: dict = field(default_factory=dict)

    def apply(self, backend: dict[str, tuple[float, float]], first: dict[str, np.ndarray],
              keep: tuple[str, ...] = ()) -> dict[str, tuple[float, float]]:
        """``backend`` ranges with every tensor whose values on the first calibration image (``first``) are a
        searched point's replaced by that point's range; ``keep``: tensors never replaced (input, logits)."""
        if not self.ranges:
            return backend
        by_size: dict[int, list[str]] = {}
        for p, sig in self.signatures.items():
            by_size.setdefault(sig.size, []).append(p)
        out, matched, replaced = dict(backend), set(), 0
        for name, values in first.items():
            if name in keep or name not in backend:
                continue
            cands = by_size.get(np.asarray(values).size, ())
            if not cands:
                continue
            v = np.sort(np.asarray(values, np.float32).reshape(-1))
            tol = MATCH_RTOL * max(float(np.abs(v).max()), 1e-12)
            best = min(cands, key=lambda p: float(np.abs(self.signatures[p] - v).max()))
            if float(np.abs(self.signatures[best] - v).max()) <= tol:
                out[name] = self.ranges[best]
                matched.add(best)
                replaced += 1
        self.report["backend_tensors_replaced"] = replaced
        self.report["points_matched"] = f"{len(matched)} of {len(self.ranges)}"
        return out


def _fake_quant(x: torch.Tensor, lo: float, hi: float, symmetric: bool) -> torch.Tensor:
    if symmetric:
        s = max(hi, -lo, 1e-12) / 127.0
        return torch.clamp(torch.round(x / s), -128, 127) * s
    s = max(hi - lo, 1e-12) / 255.0
    zp = float(np.round(-128.0 - lo / s))
    return (torch.clamp(torch.round(x / s) + zp, -128, 127) - zp) * s


def _points(gm) -> list[str]:
    """Names of the fx nodes whose outputs an int8 backend quantizes (module docstring, step 1)."""
    mods = dict(gm.named_modules())
    fused_into: set[str] = set()
    points = []
    for n in gm.graph.nodes:
        if n.op in ("placeholder", "output", "get_attr") or n.name in fused_into:
            continue
        if n.op == "call_module":
            m = mods[n.target]
            if isinstance(m, _FUSED):
                points.append(n.name)  # not after a conv (those are absorbed below): its own output
                continue
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                cur = n
                while len(cur.users) == 1:
                    u = next(iter(cur.users))
                    if u.op == "call_module" and isinstance(mods[u.target], _FUSED):
                        fused_into.add(u.name)
                        cur = u
                    else:
                        break
                points.append(cur.name)
                continue
        elif n.op == "call_method" and n.target in _SHAPE_METHODS:
            continue
        elif n.op == "call_function" and n.target in _SHAPE_FUNCTIONS:
            continue
        points.append(n.name)
    return points


class _Sim:
    """The traced int8-weight model run node by node, fake-quantizing point outputs; ``run(start=k)``
    reuses the values of the nodes before ``k`` from a stored environment.

    Owns ``gm``: its in-place activations (``nn.ReLU6(inplace=True)``, ``nn.Hardswish(inplace=True)``, ...) are
    made out-of-place, because a stored environment must keep each node's own value. In place, a resumed run
    would feed the activation its already-activated input (Hardswish twice) and rewrite the stored tensors."""

    def __init__(self, gm, symmetric: bool):
        for m in gm.modules():
            if getattr(m, "inplace", False):
                m.inplace = False
        self.gm, self.symmetric = gm, symmetric
        self.nodes = list(gm.graph.nodes)
        self.index = {n.name: i for i, n in enumerate(self.nodes)}
        self.node = {n.name: n for n in self.nodes}

    def run(self, x: torch.Tensor, ranges: dict[str, tuple[float, float]], env: dict | None = None,
            start: int = 0) -> tuple[torch.Tensor, dict]:
        import torch.fx as fx

        env = dict(env) if env else {}
        interp = fx.Interpreter(self.gm)
        interp.env = env
        out = None
        for i, n in enumerate(self.nodes):
            if i < start and n in env:
                continue
            if n.op == "placeholder":
                env[n] = x
                continue
            if n.op == "output":
                out = interp.run_node(n)
                break
            v = interp.run_node(n)
            if n.name in ranges and isinstance(v, torch.Tensor) and v.is_floating_point():
                v = _fake_quant(v, *ranges[n.name], self.symmetric)
            env[n] = v
        if isinstance(out, (tuple, list)):
            out = out[0]
        return out, env


def _int8_weights(model: nn.Module) -> nn.Module:
    from .bias_correction import int8_weight_error

    m = copy.deepcopy(model).eval()
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, (nn.Conv2d, nn.Linear)):
                mod.weight.add_(int8_weight_error(mod.weight))
    return m


def _kl(ref: list[torch.Tensor], out: list[torch.Tensor]) -> float:
    """Summed KL(softmax(ref) || softmax(out)) over the images: the error where the top classes are."""
    tot = 0.0
    for r, o in zip(ref, out, strict=True):
        lp, lq = torch.log_softmax(r.double().reshape(-1), 0), torch.log_softmax(o.double().reshape(-1), 0)
        tot += float((lp.exp() * (lp - lq)).sum())
    return tot


def _collect(sim: _Sim, float_sim: _Sim, points: list[str], xs: list[torch.Tensor], n_search: int):
    """Range statistics of every point over every calibration image (as the backends compute them), the
    environments of the first ``n_search`` runs, and the sorted float values of each point on the first image
    (what the backend's float model computes: from the float weights)."""
    from .ranges import RangeCollector

    col, envs, signatures = RangeCollector(), [], {}
    for k, x in enumerate(xs):
        _, env = sim.run(x, {})
        for p in points:
            v = env.get(sim.node[p])
            if isinstance(v, torch.Tensor) and v.is_floating_point():
                col.add(p, v.numpy())
        if k < n_search:
            envs.append(env)
        if k == 0:
            fenv = float_sim.run(x, {})[1]
            for p in points:
                v = fenv.get(float_sim.node[p])
                if isinstance(v, torch.Tensor) and v.is_floating_point():
                    signatures[p] = np.sort(v.numpy().astype(np.float32).reshape(-1))
    return col, envs, signatures


def _greedy(sim: _Sim, ranges: dict, chosen: list[str], xs: list[torch.Tensor], ref: list[torch.Tensor]):
    """Step 3 of the module docstring; updates ``ranges`` in place. (factor per point, KL before, KL after).

    A factor replaces the current range only if it lowers the KL by at least ``MIN_GAIN`` (relative) and
    ``MIN_KL_GAIN`` per image (absolute): on a model whose logits are nearly flat the differences between factors
    are noise, and taking the least picks arbitrary ranges (measured: MobileNetV3-L with untrained weights, KL
    6.6e-9 per image, had 13 of its 16 searched ranges shrunk to 0.25x, a hard-sigmoid gate's among them)."""
    runs = [sim.run(x, ranges) for x in xs]
    before = after = _kl(ref, [o for o, _ in runs])
    envs = [e for _, e in runs]
    searched = {}
    for p in chosen:
        start, base = sim.index[p], ranges[p]
        best = (1.0, after, envs)  # the current ranges: their KL is ``after``, their environments ``envs``
        for f in FACTORS:
            if f == 1.0:
                continue
            trial = {**ranges, p: (base[0] * f, base[1] * f)}
            outs = [sim.run(x, trial, env, start) for x, env in zip(xs, envs, strict=True)]
            err = _kl(ref, [o for o, _ in outs])
            if err < best[1] and err < min(after * (1.0 - MIN_GAIN), after - MIN_KL_GAIN * len(xs)):
                best = (f, err, [e for _, e in outs])
        f, after, envs = best
        ranges[p] = (base[0] * f, base[1] * f)
        searched[p] = f
    return searched, before, after


def _trace(model: nn.Module):
    """fx GraphModule of ``model``; a submodule fx cannot trace on its own (shape-dependent code such as
    TF-SAME padding) stays one opaque leaf: a single node of the graph."""
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


@torch.no_grad()
def search_ranges(model: nn.Module, reference: nn.Module, images: list[np.ndarray], symmetric: bool = False,
                  max_points: int = MAX_POINTS) -> RangePlan:
    """Loss-aware ranges for ``model`` (the int8 source model) against ``reference`` (the float model)."""
    t0 = time.perf_counter()
    method = "mse-symmetric" if symmetric else "mse"
    plan = RangePlan(report={"method": f"loss-aware range search from {method} ranges (KL of the softmax)",
                             "images": 0, "points": 0, "searched": 0})
    if not images:
        plan.report["skipped"] = "no calibration images"
        return plan
    try:
        gm, gm_float = _trace(_int8_weights(model)), _trace(copy.deepcopy(model))  # copies: _Sim owns them
        points = _points(gm)
    except Exception as e:  # torch.fx raises several types for untraceable code
        plan.report["skipped"] = f"torch.fx cannot trace the model: {type(e).__name__}"
        return plan
    sim = _Sim(gm, symmetric)
    if not points:
        plan.report["skipped"] = "no quantization points"
        return plan
    xs = [torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)) for x in images]
    search_xs = xs[:SEARCH_IMAGES]
    ref = [reference(x) for x in search_xs]
    if isinstance(ref[0], (tuple, list)):
        ref = [r[0] for r in ref]

    col, float_envs, plan.signatures = _collect(sim, _Sim(gm_float, symmetric), points, xs, len(search_xs))
    points = [p for p in points if p in col.lo]
    logits = points[-1]
    ranges = col.ranges(method, open_top=(logits,))
    # each point's own share of the KL (that point alone quantized)
    share = {}
    for p in points[:-1]:
        start = sim.index[p]
        outs = [sim.run(x, {p: ranges[p]}, env, start)[0] for x, env in zip(search_xs, float_envs, strict=True)]
        share[p] = _kl(ref, outs)
    chosen = sorted(sorted(share, key=share.get, reverse=True)[:max_points], key=sim.index.get)
    searched, before, after = _greedy(sim, ranges, chosen, search_xs, ref)
    plan.ranges = {p: ranges[p] for p, f in searched.items() if f != 1.0}
    plan.signatures = {p: v for p, v in plan.signatures.items() if p in plan.ranges}
    n = len(search_xs)
    plan.report.update({
        "images": n, "points": len(points), "searched": len(chosen),
        "factors": {p: f for p, f in searched.items() if f != 1.0},
        "kl_before": float(f"{before / n:.4g}"), "kl_after": float(f"{after / n:.4g}"),
        "seconds": round(time.perf_counter() - t0, 1)})
    return plan
