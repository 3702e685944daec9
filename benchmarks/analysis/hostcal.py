"""Host calibration for the roofline: achievable peak MAC/s (GEMM) and memory bandwidth (large copy)."""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass


@dataclass
class HostPeaks:
    peak_macs: float  # MAC/s, fp32 GEMM
    peak_bw: float  # bytes/s, read + write of a large copy
    threads: int

    @property
    def ridge_point(self) -> float:
        return self.peak_macs / self.peak_bw

    def to_dict(self) -> dict:
        d = asdict(self)
        d["ridge_point"] = self.ridge_point
        return d


def _best_of(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def measure(threads: int | None = None, n: int = 1024, copy_mb: int = 256, repeats: int = 10) -> HostPeaks:
    """Best-of-``repeats`` n×n fp32 matmul (n³ MACs) and a ``copy_mb`` MiB tensor copy (2× bytes moved)."""
    import torch

    if threads:
        torch.set_num_threads(threads)
    a, b = torch.randn(n, n), torch.randn(n, n)
    c = torch.empty(n, n)
    torch.mm(a, b, out=c)  # warm-up
    t_mm = _best_of(lambda: torch.mm(a, b, out=c), repeats)
    elems = copy_mb * 1024 * 1024 // 4
    src, dst = torch.randn(elems), torch.empty(elems)
    dst.copy_(src)
    t_cp = _best_of(lambda: dst.copy_(src), repeats)
    return HostPeaks(peak_macs=n**3 / t_mm, peak_bw=2 * elems * 4 / t_cp, threads=torch.get_num_threads())


# ---------------------------------------------------------------- the runtime's own kernels, per cache level

LEVELS = ("L1", "L2", "L3", "DRAM")


@dataclass
class Ceilings:
    """A hierarchical roofline's ceilings, calibrated in the runtime the models run on (onnxruntime, the same
    thread count): the best MAC/s of its own large convolution and GEMM kernels, and the streaming bandwidth
    (read + write of an elementwise op) at a working set inside each cache level and beyond the last.
    Per-call overhead (the same op on one element) is taken off, so the ceilings are the kernels' own rates."""

    peak_macs: float  # MAC/s
    bw: dict[str, float]  # level -> bytes/s
    capacity: dict[str, float]  # level -> bytes that fit (DRAM: inf)
    threads: int
    runtime: str
    detail: dict

    def level_for(self, nbytes: float) -> str:
        return next(lv for lv in LEVELS if nbytes <= self.capacity[lv])

    def bw_for(self, nbytes: float) -> float:
        return self.bw[self.level_for(nbytes)]

    def to_dict(self) -> dict:
        return asdict(self)


def cache_sizes() -> dict[str, float]:
    """Bytes per level from Linux sysfs (L1 data, L2 per core, L3 shared), DRAM infinite; fallbacks when absent."""
    from pathlib import Path

    sizes = {"L1": 32 * 1024.0, "L2": 1024 * 1024.0, "L3": 8 * 1024 * 1024.0, "DRAM": float("inf")}
    root = Path("/sys/devices/system/cpu/cpu0/cache")
    for d in sorted(root.glob("index*")) if root.is_dir() else ():
        try:
            level, kind, size = ((d / f).read_text().strip() for f in ("level", "type", "size"))
        except OSError:
            continue
        if kind == "Instruction" or not size.endswith("K"):
            continue
        sizes[f"L{level}"] = float(size[:-1]) * 1024
    return sizes


def _onnx_model(node, inputs, outputs, inits=()):
    import onnx
    from onnx import TensorProto, helper

    g = helper.make_graph([node], "cal", [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs],
                          [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in outputs],
                          list(inits))
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 18)])
    m.ir_version = 9
    return onnx.load_from_string(m.SerializeToString())


def _ort_best(model, feeds: dict, threads: int, repeats: int) -> float:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads, so.inter_op_num_threads = threads, 1
    s = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    s.run(None, feeds)
    return _best_of(lambda: s.run(None, feeds), repeats)


def _ort_kernel_best(model, feeds: dict, threads: int, repeats: int, ops=("Conv", "FusedConv")) -> float:
    """The best kernel time (s) of the model's ``ops`` nodes as the onnxruntime runtime's profiler reports it
    (``read_profile``): the same instrument as a model's per-layer times, without the session's layout reorders
    around a lone node."""
    import tempfile
    from pathlib import Path

    import onnx

    from mobexport.converters.runtimes import get_runtime

    rt = get_runtime("onnxruntime")
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "cal.onnx"
        onnx.save(model, str(path))
        runner = rt.load(path, None, threads=threads, options={"profile": d})
        try:
            runner.set_input(next(iter(feeds.values())))
            for _ in range(repeats + 1):
                runner.invoke()
        finally:
            runner.close()
        durs = [r["min_us"] for r in rt.read_profile(runner) if r["op"] in ops]
    return min(durs) * 1e-6 if durs else math.inf


def _weights(name: str, shape) -> object:
    import numpy as np
    from onnx import numpy_helper

    return numpy_helper.from_array(np.random.default_rng(0).standard_normal(shape).astype(np.float32) * 0.01, name)


# (kernel, channels, side) of the peak probes: stride-1 3x3 and pointwise convolutions at these models' stage shapes
CONV_PROBES = ((3, 64, 56), (3, 128, 28), (3, 256, 14), (3, 512, 7),
               (1, 64, 56), (1, 96, 56), (1, 128, 28), (1, 256, 14), (1, 512, 7))


def mac_rates(threads: int = 1, repeats: int = 50) -> tuple[dict[str, float], float]:
    """({probe: MAC/s}, per-call overhead s) of the peak probes (``CONV_PROBES`` and a MatMul): about a second, so
    a benchmark can re-measure them between models and keep the best — a VM's clock drifts over a long run, and a
    ceiling measured at a slow moment would let a layer timed at a fast one beat it."""
    import numpy as np
    from onnx import helper

    rng = np.random.default_rng(0)
    tiny = _onnx_model(helper.make_node("Relu", ["x"], ["y"]), [("x", [1])], ["y"])
    t0 = _ort_best(tiny, {"x": np.ones(1, np.float32)}, threads, repeats * 10)  # per-call overhead
    rates = {}
    for k, c, hw in CONV_PROBES:
        conv = _onnx_model(helper.make_node("Conv", ["x", "w"], ["y"], pads=[k // 2] * 4), [("x", [1, c, hw, hw])],
                           ["y"], [_weights("w", (c, c, k, k))])
        feeds = {"x": rng.standard_normal((1, c, hw, hw), np.float32)}
        rates[f"conv{k}x{k}_{c}x{hw}x{hw}"] = c * c * k * k * hw * hw / max(1e-9, min(
            _ort_best(conv, feeds, threads, repeats) - t0, _ort_kernel_best(conv, feeds, threads, repeats)))
    gemm = _onnx_model(helper.make_node("MatMul", ["x", "w"], ["y"]), [("x", [256, 512])], ["y"],
                       [_weights("w", (512, 512))])
    rates["matmul_256x512x512"] = 256 * 512 * 512 / max(1e-9, _ort_best(
        gemm, {"x": rng.standard_normal((256, 512), np.float32)}, threads, repeats) - t0)
    return rates, t0


def measure_onnxruntime(threads: int = 1, repeats: int = 50, dram_mb: int = 256) -> Ceilings:
    """Ceilings of onnxruntime's CPU kernels at ``threads``: peak MAC/s = the best of stride-1 3x3 and pointwise
    convolutions at the shapes of these models' stages (``CONV_PROBES``: each picks its own kernel, and a stage's
    layer must not beat the ceiling — a lone 128x28² 3x3 probe was beaten by RepVGG's 64x56² layers, the 3x3 set
    by MobileOne's 96x56² pointwise ones; timed as a whole session and by the profiler's kernel
    time, the faster counts) and a 256x512x512 MatMul (a few ms each, so a min over
    ``repeats`` finds an uninterrupted run on a shared machine); bandwidth per level = a Relu over a working set (input + output)
    at half of L1 and L2, at min(half of L3, 4x L2) for L3 (what a layer of these models holds; a VM may
    report a huge L3) and at ``dram_mb`` (256 MiB) for DRAM; each level's ceiling is its fastest probe."""
    import numpy as np

    rng = np.random.default_rng(0)
    rates, t0 = mac_rates(threads, repeats)
    cap = cache_sizes()
    bw, sets, probes = {}, {}, {}
    for lv in LEVELS:
        nbytes = {"L3": min(cap["L3"] / 2, 4 * cap["L2"]), "DRAM": dram_mb * 2**20}.get(lv, cap[lv] / 2)
        probes[lv] = {k: nb / max(1e-9, t - t0) for k, (nb, t) in _stream_probes(
            nbytes, threads, repeats if lv != "DRAM" else max(3, repeats // 4), rng).items()}
        bw[lv], sets[lv] = max(probes[lv].values()), nbytes
    for a, b in reversed(list(zip(LEVELS, LEVELS[1:], strict=False))):  # an inner level is never slower
        bw[a] = max(bw[a], bw[b])
    return Ceilings(peak_macs=max(rates.values()), bw=bw, capacity=cap, threads=threads, runtime="onnxruntime",
                    detail={"mac_rates": rates, "overhead_s": t0, "stream_bytes": sets, "stream_rates": probes})


def _stream_probes(nbytes: float, threads: int, repeats: int, rng) -> dict[str, tuple[float, float]]:
    """{probe: (bytes moved, best seconds)} for three memory-bound kernels of the runtime over about ``nbytes``
    of working set: Relu (read + write), ReduceSum (read), and a 1x1 convolution 16->16 channels (read + write,
    the layout and kernel the models' pointwise layers use)."""
    import numpy as np
    from onnx import helper

    n = max(16, int(nbytes // 8))
    hw = max(1, int((n // 16) ** 0.5))
    relu = _onnx_model(helper.make_node("Relu", ["x"], ["y"]), [("x", [n])], ["y"])
    red = _onnx_model(helper.make_node("ReduceSum", ["x"], ["y"], keepdims=0), [("x", [2 * n])], ["y"])
    pw = _onnx_model(helper.make_node("Conv", ["x", "w"], ["y"]), [("x", [1, 16, hw, hw])], ["y"],
                     [_weights("w", (16, 16, 1, 1))])
    return {"relu": (8 * n, _ort_best(relu, {"x": rng.standard_normal(n, np.float32)}, threads, repeats)),
            "reducesum": (8 * n, _ort_best(red, {"x": rng.standard_normal(2 * n, np.float32)}, threads, repeats)),
            "conv1x1_16": (8 * 16 * hw * hw, _ort_best(pw, {"x": rng.standard_normal((1, 16, hw, hw), np.float32)},
                                                        threads, repeats))}
