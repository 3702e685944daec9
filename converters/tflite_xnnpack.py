"""Graph rewrites on a full-integer .tflite that keep every op on XNNPACK's int8 path, and the check that
finds ops XNNPACK leaves to TFLite's own kernels.

Why: LiteRT 2.3.0's XNNPACK delegate takes HARD_SWISH only in float. In an int8 MobileNetV3 (21 of them) or
MoGA-A (25) each one stays on TFLite's builtin int8 kernel and splits the graph into 22 / 26 delegate
partitions; that made tflite-w8a8 slower than tflite-fp32 for both (results/bench_reparam_int8.md). The rewrite
spells int8 hard-swish with ops XNNPACK does take in int8:

    r = ADD(x, 3) with fused RELU6, r quantized on [0, 6]   (= relu6(x + 3))
    g = MUL(r, 1/6), g quantized on [0, 1]                 (same int8 codes as r: an exact relabel)
    y = MUL(x, g) at the original output's scale           (= x * relu6(x + 3) / 6)
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np


def write_flatbuffer(model, path) -> None:
    """``flatbuffer_utils.write_model`` with every buffer as a numpy array first: ``read_model`` leaves offset-stored
    buffers (what litert-torch and ai-edge-quantizer write) as ``bytes``, and the generated ``BufferT.Pack`` then
    packs them one byte per Python call: 22 s of a 54 s RegNetX-1.6GF tflite-w8a8 export, for a metadata entry."""
    from ai_edge_litert.tools import flatbuffer_utils

    for b in model.buffers or []:
        if b.data is not None and not isinstance(b.data, np.ndarray):
            b.data = np.frombuffer(bytes(b.data), dtype=np.uint8)
    flatbuffer_utils.write_model(model, str(path))


def _opcode(model, schema, builtin: int) -> int:
    for i, c in enumerate(model.operatorCodes):
        if c.builtinCode == builtin:
            return i
    code = schema.OperatorCodeT()
    code.builtinCode, code.deprecatedBuiltinCode, code.version = builtin, min(builtin, 127), 2
    model.operatorCodes.append(code)
    return len(model.operatorCodes) - 1


def _tensor(model, sg, schema, name: bytes, shape, scale: float, zero_point: int, value: int | None = None) -> int:
    """An int8 per-tensor tensor; ``value`` given: a scalar constant with its own buffer."""
    t = schema.TensorT()
    t.name, t.type, t.shape = name, schema.TensorType.INT8, list(shape)
    q = schema.QuantizationParametersT()
    q.scale, q.zeroPoint = np.array([scale], np.float32), np.array([zero_point], np.int64)
    t.quantization = q
    if value is None:
        t.buffer = 0
    else:
        buf = schema.BufferT()
        buf.data = np.array([value], np.int8).view(np.uint8)
        model.buffers.append(buf)
        t.buffer = len(model.buffers) - 1
    sg.tensors.append(t)
    return len(sg.tensors) - 1


def _op(schema, opcode: int, inputs, output: int, kind: str, act: int):
    op = schema.OperatorT()
    op.opcodeIndex, op.inputs, op.outputs = opcode, list(inputs), [output]
    if kind == "add":
        op.builtinOptionsType, op.builtinOptions = schema.BuiltinOptions.AddOptions, schema.AddOptionsT()
    else:
        op.builtinOptionsType, op.builtinOptions = schema.BuiltinOptions.MulOptions, schema.MulOptionsT()
    op.builtinOptions.fusedActivationFunction = act
    return op


def lower_int8_hard_swish(path: Path) -> int:
    """Rewrite every int8 HARD_SWISH of ``path`` in place as ADD/MUL/MUL (module docstring); the count."""
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model(str(path))
    hs = next((i for i, c in enumerate(model.operatorCodes) if c.builtinCode == schema.BuiltinOperator.HARD_SWISH),
              None)
    if hs is None:
        return 0
    add, mul = _opcode(model, schema, schema.BuiltinOperator.ADD), _opcode(model, schema, schema.BuiltinOperator.MUL)
    none, relu6 = schema.ActivationFunctionType.NONE, schema.ActivationFunctionType.RELU6
    done = 0
    for sg in model.subgraphs:
        ops = []
        for op in sg.operators:
            x = sg.tensors[op.inputs[0]]
            if op.opcodeIndex != hs or x.type != schema.TensorType.INT8:
                ops.append(op)
                continue
            k = done
            three = _tensor(model, sg, schema, b"mobexport.hswish%d.three" % k, [], 3.0 / 127, 0, 127)
            sixth = _tensor(model, sg, schema, b"mobexport.hswish%d.sixth" % k, [], 1.0 / 6 / 127, 0, 127)
            r = _tensor(model, sg, schema, b"mobexport.hswish%d.relu6" % k, x.shape, 6.0 / 255, -128)
            g = _tensor(model, sg, schema, b"mobexport.hswish%d.gate" % k, x.shape, 1.0 / 255, -128)
            ops += [_op(schema, add, (op.inputs[0], three), r, "add", relu6),
                    _op(schema, mul, (r, sixth), g, "mul", none),
                    _op(schema, mul, (op.inputs[0], g), op.outputs[0], "mul", none)]
            done += 1
        sg.operators = ops
    if done:
        write_flatbuffer(model, path)
    return done


def xnnpack_undelegated(path: Path) -> dict[str, int]:
    """Ops that LiteRT's XNNPACK delegate leaves to TFLite's builtin kernels, by op name (1 thread): every
    original op that no delegate partition contains."""
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(path), num_threads=1)
    it.allocate_tensors()
    ops = it._get_ops_details()
    parts = [o for o in ops if o["op_name"] == "DELEGATE"]
    originals = [o for o in ops if o["op_name"] != "DELEGATE"]
    if not parts:
        return dict(Counter(o["op_name"] for o in originals))
    produced_inside = _produced_inside(originals, parts)
    return dict(sorted(Counter(o["op_name"] for k, o in enumerate(originals) if k not in produced_inside).items()))


def _produced_inside(originals, parts) -> set[int]:
    """Indices of the original ops that belong to some delegate partition: walking forward from each
    partition's inputs, an op belongs if all its non-constant inputs are partition inputs or written by ops
    that belong, until the partition's outputs are reached."""
    producer = {t: k for k, o in enumerate(originals) for t in o["outputs"]}
    members: set[int] = set()
    for p in parts:
        stop = set(p["outputs"])
        frontier = [producer[t] for t in stop if t in producer]
        inputs = set(p["inputs"])
        while frontier:
            k = frontier.pop()
            if k in members:
                continue
            members.add(k)
            for t in originals[k]["inputs"]:
                if t >= 0 and t not in inputs and t in producer:
                    frontier.append(producer[t])
    return members


# ---------------------------------------------------------------- depthwise kernels over XNNPACK's 25 taps

XNNPACK_DW_MAX_TAPS = 25  # measured: a 56x56x144 depthwise runs 0.31 ms at 5x5, 15-27 ms at 5x7, 6x6, 7x7


def _split_depthwise_module():
    import torch
    import torch.nn.functional as F

    class SplitDepthwise(torch.nn.Module):
        """A depthwise Conv2d whose kernel has more taps than XNNPACK's fast depthwise kernels, computed as
        the sum of depthwise convolutions over column bands of the kernel (each ≤ 25 taps) on shifted views
        of the once-padded input: the same products, summed in another order."""

        def __init__(self, conv: torch.nn.Conv2d):
            super().__init__()
            kh, kw = conv.kernel_size
            self.stride, self.dilation, self.groups = conv.stride, conv.dilation, conv.groups
            self.pad = (conv.padding[1], conv.padding[1], conv.padding[0], conv.padding[0])
            width = max(1, XNNPACK_DW_MAX_TAPS // kh)
            self.bands = [(c0, min(width, kw - c0)) for c0 in range(0, kw, width)]
            w = conv.weight.detach()
            self.weights = torch.nn.ParameterList(
                torch.nn.Parameter(w[..., c0:c0 + n].clone(), requires_grad=False) for c0, n in self.bands)
            self.bias = None if conv.bias is None else torch.nn.Parameter(conv.bias.detach().clone(),
                                                                          requires_grad=False)
            self.kw = kw

        def forward(self, x):
            xp = F.pad(x, self.pad) if any(self.pad) else x
            sw, dw = self.stride[1], self.dilation[1]
            w_out = (xp.shape[-1] - dw * (self.kw - 1) - 1) // sw + 1
            y = None
            for (c0, n), w in zip(self.bands, self.weights, strict=True):
                span = (w_out - 1) * sw + dw * (n - 1) + 1
                part = F.conv2d(xp[..., c0 * dw:c0 * dw + span], w, self.bias if y is None else None,
                                self.stride, 0, self.dilation, self.groups)
                y = part if y is None else y + part
            return y

    return SplitDepthwise


def _large_depthwise(model) -> list[str]:
    import torch

    names = []
    for name, mod in model.named_modules():
        if (isinstance(mod, torch.nn.Conv2d) and mod.groups > 1 and mod.groups == mod.in_channels
                == mod.out_channels and mod.padding_mode == "zeros" and isinstance(mod.padding, tuple)
                and mod.kernel_size[0] * mod.kernel_size[1] > XNNPACK_DW_MAX_TAPS
                and mod.kernel_size[0] <= XNNPACK_DW_MAX_TAPS):
            names.append(name)
    return names


def split_large_depthwise(model):
    """``(model, n)``: a copy of ``model`` in which each of the n depthwise Conv2d (groups = in = out
    channels, zero padding) with more than ``XNNPACK_DW_MAX_TAPS`` taps is a ``SplitDepthwise``, or ``model``
    itself when n = 0. The original is never changed."""
    import copy

    names = _large_depthwise(model)
    if not names:
        return model, 0
    model, split = copy.deepcopy(model), _split_depthwise_module()
    for name in names:
        parent, _, attr = name.rpartition(".")
        owner = model.get_submodule(parent) if parent else model
        setattr(owner, attr, split(getattr(owner, attr)))
    return model, len(names)


# ---------------------------------------------------------------- int8 against fp32 at export time

SPEED_RUNS, SPEED_WARMUP, SPEED_ROUNDS = 15, 3, 3
TIE = 1.05  # int8 less than 5 % faster than fp32: within the spread of a short min on a shared host, no gain


def _min_ms(path: Path, runs: int, warmup: int) -> float:
    """Min of ``runs`` round trips after ``warmup``, ms: the registry's LiteRT runtime (XNNPACK, 1 thread) and the
    runtime layer's one timing loop (``runtimes.warm_up``/``time_round_trips``), on a zero input of the native
    dtype."""
    from .runtimes import get_runtime, time_round_trips, warm_up

    runner = get_runtime("ai-edge-litert").load(path, {}, 1)
    try:
        x = np.zeros(runner.inp["shape"], runner.inp["dtype"])
        warm_up(runner, x, max(0, warmup - 1))
        return min(time_round_trips(runner, x, runs))
    finally:
        runner.close()


def int8_vs_fp32(float_path: Path, int8_path: Path, runs: int = SPEED_RUNS) -> dict:
    """Both graphs timed the same way (LiteRT XNNPACK, 1 thread, min of ``runs``, alternating over
    ``SPEED_ROUNDS`` rounds so a neighbour's burst hits both), the ops XNNPACK leaves out of the int8 graph, and
    ``note`` = 'int8 slower than fp32 here: <reason>' when int8 is slower, 'int8 no faster than fp32 here: ...' when
    it gains less than ``TIE``."""
    fp32 = int8 = float("inf")
    for _ in range(SPEED_ROUNDS):
        fp32 = min(fp32, _min_ms(float_path, runs, SPEED_WARMUP))
        int8 = min(int8, _min_ms(int8_path, runs, SPEED_WARMUP))
    left = xnnpack_undelegated(int8_path)
    out = {"fp32_ms": round(fp32, 3), "int8_ms": round(int8, 3), "speedup": round(fp32 / int8, 2),
           "protocol": f"LiteRT XNNPACK, 1 thread, min of {SPEED_ROUNDS} x {runs} alternating, after "
                       f"{SPEED_WARMUP}, at export",
           "xnnpack_undelegated": left}
    if int8 * TIE > fp32:
        why = (f"ops outside XNNPACK's int8 path ({', '.join(f'{k}x{v}' for k, v in left.items())})" if left
               else "every op runs in XNNPACK; its int8 kernels are not faster than fp32 for this graph on "
                    "this CPU")
        head = ("int8 slower than fp32 here" if int8 >= fp32
                else f"int8 no faster than fp32 here (under {round(100 * (TIE - 1))} % gain)")
        out["note"] = f"{head}: {int8:.2f} ms vs {fp32:.2f} ms ({why})"
    return out
