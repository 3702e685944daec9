"""Inline SVG charts drawn on the server (no script, nothing fetched): latency histogram, sample trace and a
latency-vs-y scatter with its Pareto frontier. Colours come from the stylesheet's classes."""

from __future__ import annotations

import math
from html import escape
from typing import Any

W, H = 720, 260
PAD_L, PAD_R, PAD_T, PAD_B = 56, 16, 12, 40


def _ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """About ``n`` round tick values covering [lo, hi]."""
    if hi <= lo:
        return [lo]
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step) * step
    return [first + i * step for i in range(int((hi - first) / step + 1e-9) + 1)]


def _fmt(v: float) -> str:
    return f"{v:.4g}"


class _Frame:
    """Maps data to pixels inside the padded plot area and draws the axes."""

    def __init__(self, x: tuple[float, float], y: tuple[float, float]):
        (self.x0, self.x1), (self.y0, self.y1) = x, y
        if self.x1 <= self.x0:
            self.x0, self.x1 = self.x0 - 0.5, self.x1 + 0.5
        if self.y1 <= self.y0:
            self.y0, self.y1 = self.y0 - 0.5, self.y1 + 0.5

    def px(self, x: float) -> float:
        return PAD_L + (x - self.x0) / (self.x1 - self.x0) * (W - PAD_L - PAD_R)

    def py(self, y: float) -> float:
        return H - PAD_B - (y - self.y0) / (self.y1 - self.y0) * (H - PAD_T - PAD_B)

    def axes(self, x_label: str, y_label: str) -> list[str]:
        out = [f'<line class="axis" x1="{PAD_L}" y1="{H - PAD_B}" x2="{W - PAD_R}" y2="{H - PAD_B}"/>',
               f'<line class="axis" x1="{PAD_L}" y1="{PAD_T}" x2="{PAD_L}" y2="{H - PAD_B}"/>']
        for t in _ticks(self.x0, self.x1):
            x = self.px(t)
            out.append(f'<line class="grid" x1="{x:.1f}" y1="{PAD_T}" x2="{x:.1f}" y2="{H - PAD_B}"/>'
                       f'<text class="tick" x="{x:.1f}" y="{H - PAD_B + 14}" text-anchor="middle">{_fmt(t)}</text>')
        for t in _ticks(self.y0, self.y1, 4):
            y = self.py(t)
            out.append(f'<line class="grid" x1="{PAD_L}" y1="{y:.1f}" x2="{W - PAD_R}" y2="{y:.1f}"/>'
                       f'<text class="tick" x="{PAD_L - 6}" y="{y + 4:.1f}" text-anchor="end">{_fmt(t)}</text>')
        out.append(f'<text class="label" x="{(PAD_L + W - PAD_R) / 2}" y="{H - 6}" text-anchor="middle">'
                   f'{escape(x_label)}</text>')
        out.append(f'<text class="label" x="14" y="{(PAD_T + H - PAD_B) / 2}" text-anchor="middle" '
                   f'transform="rotate(-90 14 {(PAD_T + H - PAD_B) / 2})">{escape(y_label)}</text>')
        return out


def _svg(kind: str, title: str, parts: list[str]) -> str:
    return (f'<svg class="chart {kind}" viewBox="0 0 {W} {H}" role="img" aria-label="{escape(title)}" '
            f'xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>{"".join(parts)}</svg>')


def histogram_svg(edges: list[float], counts: list[int], marks: dict[str, float]) -> str:
    """Bars of ``counts`` over ``edges`` (ms), with vertical lines at ``marks`` (e.g. min, p50, p90)."""
    f = _Frame((edges[0], edges[-1]), (0, max(counts) * 1.08))  # headroom for the mark labels
    parts = f.axes("latency (ms)", "runs")
    for lo, hi, c in zip(edges[:-1], edges[1:], counts, strict=True):
        x, w = f.px(lo), max(0.5, f.px(hi) - f.px(lo) - 1)
        y = f.py(c)
        parts.append(f'<rect class="bin" x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{H - PAD_B - y:.1f}" '
                     f'data-count="{c}"><title>{_fmt(lo)}–{_fmt(hi)} ms: {c}</title></rect>')
    for i, (name, v) in enumerate(marks.items()):  # labels one line apart: min, p50, p90 are often close
        x = f.px(v)
        parts.append(f'<line class="mark" x1="{x:.1f}" y1="{PAD_T}" x2="{x:.1f}" y2="{H - PAD_B}"/>'
                     f'<text class="marklabel" x="{x + 3:.1f}" y="{PAD_T + 10 + 12 * i}">{escape(name)}</text>')
    return _svg("histogram", f"latency histogram, {len(counts)} bins", parts)


def trace_svg(samples: list[float]) -> str:
    """Each sample in run order (a drift or a thermal step shows as a slope or a jump)."""
    f = _Frame((0, max(1, len(samples) - 1)), (min(samples), max(samples)))
    parts = f.axes("run", "latency (ms)")
    step = max(1, len(samples) // 2000)  # at most ~2000 vertices
    pts = " ".join(f"{f.px(i):.1f},{f.py(v):.1f}" for i, v in list(enumerate(samples))[::step])
    parts.append(f'<polyline class="trace" points="{pts}"/>')
    return _svg("trace", f"sample trace, {len(samples)} runs", parts)


LABELLED = 24  # up to this many points, each is labelled beside its circle


def scatter_svg(points: list[dict[str, Any]], front: list[dict[str, Any]], y_label: str,
                series_of, href_of, label_of) -> str:
    """One circle per point (class ``s0``..``s7`` by ``series_of(row)`` index), the frontier as a line, and
    ``label_of(row)`` beside each point when there are few."""
    xs, ys = [p["x"] for p in points], [p["y"] for p in points]
    pad_x, pad_y = (max(xs) - min(xs)) * 0.05 or 0.5, (max(ys) - min(ys)) * 0.08 or 0.5
    f = _Frame((max(0.0, min(xs) - pad_x), max(xs) + pad_x), (min(ys) - pad_y, max(ys) + pad_y))
    parts = f.axes("latency, min (ms)", y_label)
    if len(front) > 1:
        line = " ".join(f"{f.px(p['x']):.1f},{f.py(p['y']):.1f}" for p in front)
        parts.append(f'<polyline class="frontier" points="{line}"/>')
    on_front = {id(p) for p in front}
    for p in points:
        r = p["row"]
        cls = f"point s{series_of(r) % 8}{' front' if id(p) in on_front else ''}"
        tip = f"{r['model']} {r['target']} on {r['device']} ({r['runtime']}): {_fmt(p['x'])} ms, {_fmt(p['y'])}"
        cx, cy = f.px(p["x"]), f.py(p["y"])
        parts.append(f'<a href="{escape(href_of(r))}"><circle class="{cls}" cx="{cx:.1f}" cy="{cy:.1f}" r="5">'
                     f'<title>{escape(tip)}</title></circle></a>')
        if len(points) <= LABELLED:
            anchor = "end" if cx > W - 160 else "start"
            dx = -8 if anchor == "end" else 8
            parts.append(f'<text class="pointlabel" x="{cx + dx:.1f}" y="{cy - 7:.1f}" text-anchor="{anchor}">'
                         f'{escape(label_of(r))}</text>')
    return _svg("scatter", f"latency against {y_label}, {len(points)} points", parts)
