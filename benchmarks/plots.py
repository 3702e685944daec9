"""Plots (matplotlib, Agg backend, files only): the latency/accuracy Pareto view per target and the raw-sample
distribution of one or more results."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path, PurePath
from typing import Any

from mobexport.exporter.errors import UsageError

Y_AXES = {"top1": "top-1 (%)", "params": "params (M)", "macs": "MACs (M)"}
_Y_LABEL = {"params": "params (reference deploy form)", "macs": "MACs (reference deploy form)"}


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
    if y == "macs":
        macs = spec.reference.macs or spec.published.macs
        return macs / 1e6 if macs else None
    params = spec.reference.params or spec.published.params
    return params / 1e6 if params else None


def is_random_weights(record: dict[str, Any]) -> bool:
    from mobexport.exporter.source import is_random_tag

    acc = record.get("accuracy") or {}
    return is_random_tag(record.get("weights")) or bool(acc.get("random_weights"))


def has_published_weights(record: dict[str, Any]) -> bool:
    """The record's weights tag names the model's published checkpoint (``ModelSpec.default_weights``, with the
    sha256 prefix of the fetched file when the tag carries one)."""
    from mobexport.exporter import registry
    from mobexport.exporter.assets import WEIGHTS

    try:
        spec = registry.get_spec(record["model"])
    except Exception:
        return False
    name, _, sha = str(record.get("weights", "")).partition("@sha256:")
    if not spec.default_weights or Path(name).name != spec.default_weights:
        return False
    known = WEIGHTS.get(spec.default_weights)
    return not sha or known is None or known.sha256.startswith(sha)


def _quantized(target: str) -> bool:
    return target.endswith(("-w8a8", "-w8"))


def top1_point(record: dict[str, Any]) -> tuple[float, str] | None:
    """(top-1 %, source) of a latency record: the measured top-1 of its artifact where an accuracy record is
    joined ("measured top-1 on DATA (n=N)"), else the published top-1 for the published float weights only
    ("published"); None for random weights, and never the published figure for an int8 / weight-only artifact."""
    if is_random_weights(record):
        return None
    acc = record.get("accuracy") or {}
    if acc.get("artifact_top1") is not None:
        name = PurePath(str(acc.get("dataset_path", "?"))).name
        return 100 * acc["artifact_top1"], f"measured top-1 on {name} (n={acc.get('n_images')})"
    if _quantized(record["target"]) or not has_published_weights(record):
        return None
    v = model_metric(record["model"], "top1")
    return (v, "published") if v is not None else None


def _point(record: dict[str, Any], y: str) -> tuple[float, str] | None:
    if y == "top1":
        return top1_point(record)
    v = model_metric(record["model"], y)
    return None if v is None else (v, "random weights" if is_random_weights(record) else y)


def _style(source: str) -> dict[str, Any]:
    if source == "published":
        return dict(marker="^", label="published top-1 (published weights)")
    if source == "random weights":
        return dict(marker="o", facecolors="none", edgecolors="tab:gray", label="random weights")
    return dict(marker="o", label=_Y_LABEL.get(source, source))  # params / MACs, or "measured top-1 on DATA"


def _panels(records: list[dict[str, Any]], y: str) -> dict[str, list[tuple[float, float, str, str]]]:
    """{target: [(min ms, y, model, source)]}: the best latency per model and y source."""
    best: dict[str, dict[tuple[str, str], tuple[float, float]]] = defaultdict(dict)
    for r in records:
        pt = _point(r, y)
        if pt is None:
            continue
        key = (r["model"], pt[1])
        cur = best[r["target"]].get(key)
        if cur is None or r["min_ms"] < cur[0]:
            best[r["target"]][key] = (r["min_ms"], pt[0])
    return {t: [(ms, v, m, src) for (m, src), (ms, v) in sorted(pts.items())]
            for t, pts in sorted(best.items()) if pts}


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
    """One panel per target: min latency (x) vs top-1 or params (y), best result per model, with the Pareto
    front. Top-1 is the measured one (``mobexport eval``, joined as ``record["accuracy"]``) where it exists,
    else the published top-1 for the published weights only (triangles); random-weight and int8 artifacts never
    get the published figure, and random-weight results are left out of the top-1 view (drawn hollow in the
    params view). For ``y='params'`` the front is the smallest model for its latency, so it is inverted."""
    if y not in Y_AXES:
        raise UsageError(f"unknown y axis '{y}' (choose {', '.join(Y_AXES)})")
    panels = _panels(records, y)
    if not panels:
        why = (" (random-weight results have no meaningful top-1, int8 ones no published top-1: run "
               "`mobexport eval` or use --y params)") if y == "top1" else ""
        raise UsageError(f"nothing to plot: no result for a registered model with a known {y}{why}")
    plt = _pyplot()
    cols = min(3, len(panels))  # a grid that fits a page, not one long row
    rows = -(-len(panels) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5 * cols, 4.2 * rows + 0.4), squeeze=False)
    flat = [ax for row in axes for ax in row]
    for ax, (target, pts) in zip(flat, panels.items(), strict=False):
        _draw_panel(ax, target, pts, y)
    for ax in flat[len(panels):]:
        ax.set_visible(False)
    fig.suptitle(title)
    left_out = _random_left_out(records) if y == "top1" else []
    if left_out:  # random weights are named, not silently dropped
        fig.text(0.01, 0.005, "not shown (no meaningful top-1): " + "; ".join(left_out), fontsize=7,
                 ha="left", va="bottom", wrap=True)
    return _save(fig, plt, out, bottom=0.04 if left_out else 0.0)


def _random_left_out(records: list[dict[str, Any]]) -> list[str]:
    """``model: <weights tag>`` for each random-weight model of ``records``."""
    seen = {}
    for r in records:
        if is_random_weights(r):
            seen.setdefault(r["model"], str(r.get("weights", "random weights")))
    return [f"{m}: {tag}" for m, tag in sorted(seen.items())]


def _draw_panel(ax, target: str, pts: list[tuple[float, float, str, str]], y: str) -> None:
    """Points by source; top-1 fronts are drawn per source (a measured top-1 on a few photos and a published
    ImageNet top-1 are not comparable), the params front over every point."""
    sources = sorted({p[3] for p in pts})
    for src in sources:
        sel = [p for p in pts if p[3] == src]
        ax.scatter([p[0] for p in sel], [p[1] for p in sel], s=28, **_style(src))
    for ms, v, m, _src in pts:
        ax.annotate(m, (ms, v), fontsize=7, xytext=(3, 3), textcoords="offset points")
    sign = 1 if y == "top1" else -1
    for src in sources if y == "top1" else [None]:
        front = pareto_front([(ms, sign * v) for ms, v, _, s in pts if src is None or s == src])
        if len(front) > 1:
            ax.plot([p[0] for p in front], [sign * p[1] for p in front], "--", lw=1, color="tab:red",
                    label="Pareto front" + (f" ({_style(src)['label']})" if src and len(sources) > 1 else ""))
    ax.set_title(target)
    ax.set_xlabel("min latency (ms, min of N)")
    ax.set_ylabel(Y_AXES[y])
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)


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


def _save(fig, plt, out: str | Path, *, bottom: float = 0.0) -> Path:
    out = Path(out)
    if not out.parent.exists():
        raise UsageError(f"cannot write plot {out}: folder {out.parent} does not exist")
    fig.tight_layout(rect=(0, bottom, 1, 1))
    tmp = out.with_name(out.name + ".part")
    fig.savefig(tmp, dpi=120, format=out.suffix.lstrip(".") or "png")
    plt.close(fig)
    tmp.replace(out)
    return out
