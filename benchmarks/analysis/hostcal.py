"""Host calibration for the roofline: achievable peak MAC/s (GEMM) and memory bandwidth (large copy)."""

from __future__ import annotations

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
