"""What the results pages show, computed from stored records (no HTML here): rows for the table, filters,
sorting and search, the regression rule, a model's targets x devices grid, Pareto points and histogram bins.

The regression rule (``REGRESSION_RULE`` says it in words; the figures are the constants below):

* Runs are grouped by configuration: model, target, device, runtime, compute unit, threads and batch size (a
  run with other threads or batch is another measurement, not a regression). "Latest" is the run stored last.
* The latest run's min is compared with the previous run's min, or with a pinned baseline run of the same
  configuration (``?baseline=ID`` on the regressions page).
* Noise band: from the mins of the runs before the latest (at least ``MIN_HISTORY`` of them), the relative
  robust spread sigma = 1.4826 * MAD / median; band = max(``NOISE_FLOOR``, ``NOISE_K`` * sigma). With fewer
  runs there is no estimate of the noise and the band is ``DEFAULT_BAND``.
* Flagged slower when (latest - reference) / reference > band, faster when < -band, else within noise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from statistics import median
from typing import Any

from mobexport.benchmarks.results import _percentile as _quantile  # numpy's 'linear' percentile

NOISE_FLOOR = 0.03  # a min-of-N on one device moves by a few % between runs even when nothing changed
NOISE_K = 3.0
DEFAULT_BAND = 0.10  # fewer than MIN_HISTORY earlier runs: no estimate of the noise
MIN_HISTORY = 3
MAX_BINS = 100
REGRESSION_RULE = (
    f"Per configuration (model, target, device, runtime, compute unit, threads, batch), the latest run's min is "
    f"compared with the previous run's min or a pinned baseline. Noise band = max({NOISE_FLOOR:.0%}, "
    f"{NOISE_K:g} x sigma), sigma = 1.4826 x MAD / median of the earlier runs' mins (at least {MIN_HISTORY} "
    f"runs); with fewer earlier runs the band is {DEFAULT_BAND:.0%}. Slower beyond the band is a regression.")

FILTERS = ("model", "target", "device", "runtime", "harness")
COLUMNS = ("id", "model", "target", "device", "runtime", "harness", "threads", "runs", "min_ms", "p50_ms",
           "p90_ms", "std_ms", "status", "timestamp")


def row_of(stored) -> dict[str, Any]:
    """One table row of a ``StoredResult`` (no samples)."""
    r = stored.result
    return {"id": stored.id, "model": r.model, "target": r.target, "device": r.device_model, "chip": r.chip,
            "os": f"{r.os} {r.os_version}".strip(), "runtime": r.runtime, "runtime_version": r.runtime_version,
            "compute_unit": r.compute_unit, "threads": r.threads, "batch_size": r.batch_size,
            "harness": r.harness, "runs": r.runs, "min_ms": r.min_ms, "p50_ms": r.p50_ms, "p90_ms": r.p90_ms,
            "mean_ms": r.mean_ms, "std_ms": r.std_ms, "status": str(r.validation_status),
            "timestamp": r.timestamp, "sha256": r.artifact_sha256, "weights": r.weights}


def config_key(row: dict[str, Any]) -> tuple:
    return (row["model"], row["target"], row["device"], row["runtime"], row["compute_unit"], row["threads"],
            row["batch_size"])


def choices(rows: list[dict[str, Any]]) -> dict[str, list[str]]:
    """The values each filter can take in ``rows``, sorted."""
    return {f: sorted({str(r[f]) for r in rows}) for f in FILTERS}


def filter_rows(rows: list[dict[str, Any]], filters: dict[str, str], query: str = "") -> list[dict[str, Any]]:
    """Rows equal to every given filter and containing every word of ``query`` (case-insensitive) in one of
    their text fields."""
    words = query.lower().split()
    out = []
    for r in rows:
        if any(v and str(r[f]) != v for f, v in filters.items()):
            continue
        text = " ".join(str(r[k]) for k in (*FILTERS, "chip", "os", "compute_unit", "status", "weights",
                                            "sha256", "timestamp")).lower()
        if all(w in text for w in words):
            out.append(r)
    return out


def sort_rows(rows: list[dict[str, Any]], key: str, descending: bool) -> list[dict[str, Any]]:
    """Rows sorted by column ``key`` (missing values last either way), ties by id."""
    present = [r for r in rows if r.get(key) is not None]
    missing = [r for r in rows if r.get(key) is None]
    present.sort(key=lambda r: (r[key], r["id"]), reverse=descending)
    return present + missing


# ---------------------------------------------------------------- regressions


@dataclass
class Verdict:
    key: tuple
    latest: dict[str, Any]
    reference: dict[str, Any] | None  # None: the configuration has one run only
    baseline: bool  # the reference is a pinned baseline, not the previous run
    history: list[float] = field(default_factory=list)  # mins of the runs before the latest, in order
    sigma: float | None = None  # relative robust spread of ``history``; None with fewer than MIN_HISTORY
    band: float = DEFAULT_BAND
    change: float | None = None  # (latest - reference) / reference

    @property
    def flag(self) -> str:
        if self.change is None:
            return "single"
        if self.change > self.band:
            return "slower"
        return "faster" if self.change < -self.band else "same"


def noise_band(history: list[float]) -> tuple[float | None, float]:
    """(sigma, band) for the mins of earlier runs of one configuration, by the rule in the module docstring."""
    if len(history) < MIN_HISTORY:
        return None, DEFAULT_BAND
    mid = median(history)
    if mid <= 0:
        return None, DEFAULT_BAND
    sigma = 1.4826 * median(abs(x - mid) for x in history) / mid
    return sigma, max(NOISE_FLOOR, NOISE_K * sigma)


def regressions(rows: list[dict[str, Any]], baselines: set[int] = frozenset()) -> list[Verdict]:
    """One verdict per configuration, its latest run against the previous one or the pinned baseline (the
    latest pinned run of that configuration in ``baselines``). Order: regressions first, the largest first."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for r in sorted(rows, key=lambda r: r["id"]):
        groups.setdefault(config_key(r), []).append(r)
    out = []
    for key, runs in groups.items():
        latest, earlier = runs[-1], runs[:-1]
        pinned = [r for r in runs if r["id"] in baselines]
        reference = pinned[-1] if pinned else (earlier[-1] if earlier else None)
        history = [r["min_ms"] for r in earlier]
        sigma, band = noise_band(history)
        v = Verdict(key, latest, reference, bool(pinned), history, sigma, band)
        if reference is not None and reference["min_ms"] > 0:
            v.change = (latest["min_ms"] - reference["min_ms"]) / reference["min_ms"]
        out.append(v)
    rank = {"slower": 0, "faster": 1, "same": 2, "single": 3}
    out.sort(key=lambda v: (rank[v.flag], -(v.change or 0.0), v.key[:4]))
    return out


# ---------------------------------------------------------------- one model


@dataclass
class Cell:
    best: dict[str, Any]  # the fastest latest run among the configurations in this cell
    configs: int
    regressed: bool
    fastest_on_device: bool = False


def model_grid(rows: list[dict[str, Any]], verdicts: list[Verdict]) -> tuple[list[str], list[str],
                                                                               dict[tuple[str, str], Cell]]:
    """(targets, devices, {(target, device): Cell}) over one model's rows: each cell holds the latest run of
    each configuration, shows the fastest, is marked regressed when any configuration in it is, and the fastest
    cell of each device is marked."""
    cells: dict[tuple[str, str], Cell] = {}
    for v in verdicts:
        where = (v.latest["target"], v.latest["device"])
        cell = cells.get(where)
        if cell is None:
            cells[where] = Cell(v.latest, 1, v.flag == "slower")
            continue
        cell.configs += 1
        cell.regressed |= v.flag == "slower"
        if v.latest["min_ms"] < cell.best["min_ms"]:
            cell.best = v.latest
    targets = sorted({t for t, _ in cells})
    devices = sorted({d for _, d in cells})
    for d in devices:
        here = [c for (_, dev), c in cells.items() if dev == d]
        min(here, key=lambda c: c.best["min_ms"]).fastest_on_device = True
    return targets, devices, cells


# ---------------------------------------------------------------- Pareto


def pareto_points(verdicts: list[Verdict], y_of) -> list[dict[str, Any]]:
    """One point per configuration's latest run (artifact x device x runtime) whose ``y_of(row)`` is known:
    {"x": min ms, "y": value, "row": row}."""
    pts = []
    for v in verdicts:
        y = y_of(v.latest)
        if y is not None and math.isfinite(y):
            pts.append({"x": v.latest["min_ms"], "y": float(y), "row": v.latest})
    return pts


def frontier(points: list[dict[str, Any]], higher_is_better: bool) -> list[dict[str, Any]]:
    """The points no other point beats on both latency (lower) and y, by latency."""
    sign = 1 if higher_is_better else -1
    best = -math.inf
    out = []
    for p in sorted(points, key=lambda p: (p["x"], -sign * p["y"])):
        if sign * p["y"] > best:
            out.append(p)
            best = sign * p["y"]
    return out


# ---------------------------------------------------------------- histogram


def bin_count(samples: list[float]) -> int:
    """Freedman-Diaconis: width 2 * IQR * n^(-1/3), bins = ceil(range / width), at most ``MAX_BINS``; Sturges
    (ceil(log2 n) + 1) when the IQR is 0; 1 when all samples are equal."""
    s = sorted(samples)
    n = len(s)
    if n < 2 or s[-1] == s[0]:
        return 1
    iqr = _quantile(s, 0.75) - _quantile(s, 0.25)
    if iqr <= 0:
        return min(MAX_BINS, math.ceil(math.log2(n)) + 1)
    width = 2 * iqr * n ** (-1 / 3)
    return max(1, min(MAX_BINS, math.ceil((s[-1] - s[0]) / width)))


def histogram(samples: list[float]) -> tuple[list[float], list[int]]:
    """(bin edges, counts) with ``bin_count`` equal-width bins from min to max (the last bin holds the max)."""
    n_bins = bin_count(samples)
    lo, hi = min(samples), max(samples)
    width = (hi - lo) / n_bins or 1.0
    counts = [0] * n_bins
    for x in samples:
        counts[min(n_bins - 1, int((x - lo) / width))] += 1
    return [lo + i * width for i in range(n_bins + 1)], counts
