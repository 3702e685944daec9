"""Plots (matplotlib, Agg backend, files only): the latency/accuracy Pareto view per target and the raw-sample
distribution of one or more results."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

from mobexport.exporter.errors import UsageError


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def model_metric(model: str, y: str) -> float | None:
    """The y value of a model from its spec: published top-1 (%) or params (M, reference deploy form first)."""
    from mobexport.exporter import registry

    try:
        spec = registry.get_spec(model)
    except Exception:  # a model this install does not register (e.g. uploaded by an app)
        return None
    if y == "top1":
        return spec.published.top1
    params = spec.reference.params or spec.published.params
    return params / 1e6 if params else None


def pareto_front(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Points not dominated by any other (lower latency and higher y is better), sorted by latency."""
    front, best = [], float("-inf")
    for x, yv in sorted(points, key=lambda p: (p[0], -p[1])):
        if yv > best:
            front.append((x, yv))
            best = yv
    return front


def pareto_plot(records: list[dict[str, Any]], out: str | Path, *, y: str = "top1",
                title: str = "latency vs accuracy") -> Path:
    """One panel per target: min latency (x) vs published top-1 or params (y), best result per model, with
    the Pareto front. For ``y='params'`` the front is the smallest model for its latency, so it is inverted."""
    if y not in ("top1", "params"):
        raise UsageError(f"unknown y axis '{y}' (choose top1 or params)")
    best: dict[str, dict[str, float]] = defaultdict(dict)
    for r in records:
        cur = best[r["target"]].get(r["model"])
        best[r["target"]][r["model"]] = r["min_ms"] if cur is None else min(cur, r["min_ms"])
    panels = {t: [(ms, v, m) for m, ms in by_model.items() if (v := model_metric(m, y)) is not None]
              for t, by_model in sorted(best.items())}
    panels = {t: pts for t, pts in panels.items() if pts}
    if not panels:
        raise UsageError(f"nothing to plot: no result for a registered model with a known {y}")
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4.2), squeeze=False)
    for ax, (target, pts) in zip(axes[0], panels.items(), strict=True):
        ax.scatter([p[0] for p in pts], [p[1] for p in pts], s=28)
        for ms, v, m in pts:
            ax.annotate(m, (ms, v), fontsize=7, xytext=(3, 3), textcoords="offset points")
        sign = 1 if y == "top1" else -1
        front = pareto_front([(ms, sign * v) for ms, v, _ in pts])
        ax.plot([p[0] for p in front], [sign * p[1] for p in front], "--", lw=1, color="tab:red")
        ax.set_title(target)
        ax.set_xlabel("min latency (ms, min of N)")
        ax.set_ylabel("published top-1 (%)" if y == "top1" else "params (M)")
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    return _save(fig, plt, out)


def samples_plot(series: dict[str, list[float]], out: str | Path, *, title: str = "raw latency samples") -> Path:
    """Histogram of each result's raw samples (left) and the samples in run order (right)."""
    series = {k: v for k, v in series.items() if v}
    if not series:
        raise UsageError("no raw samples to plot")
    plt = _pyplot()
    fig, (hist, trace) = plt.subplots(1, 2, figsize=(11, 4))
    for label, s in series.items():
        hist.hist(s, bins=min(80, max(10, len(s) // 10)), alpha=0.6, label=f"{label} (min {min(s):.3f})")
        trace.plot(s, lw=0.6, label=label)
    hist.set_xlabel("latency (ms)")
    hist.set_ylabel("runs")
    hist.legend(fontsize=7)
    trace.set_xlabel("run")
    trace.set_ylabel("latency (ms)")
    fig.suptitle(title)
    return _save(fig, plt, out)


def _save(fig, plt, out: str | Path) -> Path:
    out = Path(out)
    if not out.parent.exists():
        raise UsageError(f"cannot write plot {out}: folder {out.parent} does not exist")
    fig.tight_layout()
    tmp = out.with_name(out.name + ".part")
    fig.savefig(tmp, dpi=120, format=out.suffix.lstrip(".") or "png")
    plt.close(fig)
    tmp.replace(out)
    return out
