"""Roofline figures (matplotlib, Agg): roofline chart, per-op-type latency at low/high RP, model ranking."""

from __future__ import annotations

import math
from pathlib import Path


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(plt, fig, path: str | Path) -> Path:
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def roofline_figure(reports: dict[str, dict], path: str | Path) -> Path:
    """Three panels: (1) each layer of the first model on the roofline at the median RP of the sweep,
    (2) its latency by op type at the lowest and highest RP, (3) predicted latency of every model vs RP."""
    plt = _plt()
    first_name, first = next(iter(reports.items()))
    fig, axes = plt.subplots(1, 3, figsize=(17, 5))
    peak = first["peak_macs"]
    rps = [s["rp"] for s in first["sweep"]]
    rp_mid = [r for r in rps if r > 0][len([r for r in rps if r > 0]) // 2]
    bw = peak / rp_mid
    ax = axes[0]
    xs = [10 ** (i / 20) for i in range(-40, 81)]
    ax.loglog(xs, [min(peak, x * bw) for x in xs], "k-", lw=1.5, label=f"roof (RP={rp_mid:g})")
    colors = {"conv": "C0", "depthwise": "C1", "pointwise": "C2", "fc": "C3", "matmul": "C4", "elementwise": "C7"}
    for op_type, color in colors.items():
        pts = [(la["intensity"], la["macs"] / max(la["macs"] / peak, la["bytes"] / bw))
               for la in first["layers"] if la["op_type"] == op_type and la["macs"] and la["intensity"]]
        if pts:
            ax.scatter(*zip(*pts, strict=True), s=12, c=color, label=op_type)
    ax.set_xlabel("operational intensity (MACs/byte)")
    ax.set_ylabel("attainable MAC/s")
    ax.set_title(f"{first_name} ({first['precision']}) on the roofline")
    ax.legend(fontsize=7)
    ax = axes[1]
    lo, hi = first["by_op_type"].keys()
    types = list(first["by_op_type"][lo])
    w = 0.4
    for i, key in enumerate((lo, hi)):
        vals = [first["by_op_type"][key][t] for t in types]
        total = sum(vals) or 1.0
        ax.bar([j + i * w for j in range(len(types))], [v / total * 100 for v in vals], w, label=f"RP={float(key):g}")
    ax.set_xticks([j + w / 2 for j in range(len(types))], types, rotation=30, fontsize=8)
    ax.set_ylabel("% of predicted latency")
    ax.set_title("latency by op type, low vs high RP")
    ax.legend(fontsize=7)
    ax = axes[2]
    for name, rep in reports.items():
        ax.plot([max(s["rp"], 1.0) for s in rep["sweep"]], [s["predicted_ms"] for s in rep["sweep"]], "o-",
                ms=3, label=name)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("ridge point (MACs/byte; 0 drawn at 1)")
    ax.set_ylabel(f"predicted ms at {peak / 1e12:g} TMAC/s")
    ax.set_title("model ranking across ridge points")
    ax.legend(fontsize=6, ncol=2)
    return _save(plt, fig, path)


def scatter_predicted_vs_measured(rows: list[dict], path: str | Path, keys=("lut_ms", "roofline_ms")) -> Path:
    plt = _plt()
    fig, axes = plt.subplots(1, len(keys), figsize=(6 * len(keys), 5))
    axes = axes if len(keys) > 1 else [axes]
    for ax, key in zip(axes, keys, strict=True):
        pts = [(r["measured_ms"], r[key]) for r in rows if r.get(key) is not None]
        if not pts:
            continue
        ax.scatter(*zip(*pts, strict=True), s=14)
        for r in rows:
            if r.get(key) is not None:
                ax.annotate(r["model"], (r["measured_ms"], r[key]), fontsize=6)
        lim = max(max(p) for p in pts) * 1.1
        if key == "lut_ms":
            ax.plot([0, lim], [0, lim], "k--", lw=0.8)
        ax.set_xlabel("measured min latency (ms)")
        ax.set_ylabel(key)
        ax.set_xscale("log" if lim > 50 else "linear")
    return _save(plt, fig, path)


def finite(x: float) -> bool:
    return x is not None and not math.isinf(x) and not math.isnan(x)
