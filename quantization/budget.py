"""int8 with a fidelity budget (``--int8 --min-agreement A`` / ``--min-sqnr D``): start from full int8 and keep
the layers that cost the most fidelity at higher precision, one at a time, until the gate holds.

Backend-independent: the converter supplies the candidate layers (with an estimated cost of keeping each one)
and ``evaluate(keep) -> metrics`` that builds the artifact with those layers kept and measures it on the
held-out crops. Here:

* ``Budget``: the gate (top-1 agreement with float and/or logit SQNR) and the validator thresholds it implies.
* ``rank``: candidates ordered by estimated gain per estimated cost; the gain is the per-layer sensitivity
  (``sensitivity.layer_sensitivity``: the logit noise power one layer's int8 adds, ``10^(-SQNR/10)``).
* ``greedy``: each step *measures* the next ``probe`` candidates in that order (one build each) and keeps the one
  with the largest measured noise reduction per cost; it stops when the gate holds on every held-out set it is
  given, or after ``max_keep`` layers (the last artifact then fails the validator: exit 1).
* ``held_out_crops``: the held-out photos x 5 crops x {as is, mirrored} (never a calibration photo), the same
  410 crops as scripts/int8_agreement.py; the first crop of each photo is the validator's input.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

CROPS_PER_PHOTO = 10  # centre + 4 corners, each as is and mirrored


@dataclass(frozen=True)
class Budget:
    min_agreement: float | None = None
    min_sqnr_db: float | None = None

    def __bool__(self) -> bool:
        return self.min_agreement is not None or self.min_sqnr_db is not None

    def unmet(self, m: dict[str, float]) -> list[str]:
        out = []
        if self.min_agreement is not None and not m["top1_agreement"] >= self.min_agreement:
            out.append(f"top-1 agreement {m['top1_agreement']:.3f} < {self.min_agreement}")
        if self.min_sqnr_db is not None and not m["sqnr_db"] >= self.min_sqnr_db:
            out.append(f"SQNR {m['sqnr_db']:.2f} dB < {self.min_sqnr_db} dB")
        return out

    def tolerances(self) -> dict[str, float]:
        """The validator thresholds (``quantization.validate.POLICIES`` keys) that say the same gate."""
        t = {}
        if self.min_agreement is not None:
            t["min_top1_agreement"] = float(self.min_agreement)
        if self.min_sqnr_db is not None:
            t["min_sqnr_db"] = float(self.min_sqnr_db)
        return t

    def describe(self) -> str:
        return " and ".join(([f"top-1 agreement >= {self.min_agreement}"] if self.min_agreement is not None else [])
                            + ([f"SQNR >= {self.min_sqnr_db} dB"] if self.min_sqnr_db is not None else []))


@dataclass
class Candidate:
    key: Any  # the converter's handle (e.g. an op's scope regex)
    name: str  # what the manifest says: the PyTorch module name where known, else the backend's op
    op: str
    cost: float  # estimated latency cost of keeping it (any unit, the same for all candidates)
    noise: float = 0.0  # estimated logit noise power its int8 adds (relative; from the sensitivity report)

    @property
    def score(self) -> float:
        return self.noise / max(self.cost, 1e-9)


def rank(candidates: Sequence[Candidate]) -> list[Candidate]:
    return sorted(candidates, key=lambda c: -c.score)


def noise_of(sqnr_db: float) -> float:
    return 10 ** (-sqnr_db / 10) if math.isfinite(sqnr_db) else 0.0


def name_after_modules(cands: Sequence[Candidate], model, calibration, holdout, what: str = "weighted ops") -> str:
    """Name the candidates' layers (``c.layers``: positions among the backend's weighted ops) after the PyTorch
    modules and give each the logit noise its layers' int8 adds (``sensitivity.layer_sensitivity``), matched in
    graph order = module definition order where the counts match (else the backend's op names stay and every
    candidate is ranked by cost alone). Sets ``c.layer_names``; returns what was matched."""
    from torch import nn

    from .sensitivity import layer_sensitivity

    rows = {r["layer"]: r for r in layer_sensitivity(model, calibration, holdout, top=10**9)["layers"]}
    order = [rows[n] for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear)) and n in rows]
    if len(order) != len(cands):
        for c in cands:
            c.layer_names = [c.name]  # type: ignore[attr-defined]
        return f"0/{len(cands)} {what} matched to PyTorch layers ({len(order)} Conv2d/Linear modules)"
    for c in cands:
        c.layer_names = [order[j]["layer"] for j in c.layers]  # type: ignore[attr-defined]
        c.name = " + ".join(c.layer_names)
        c.noise = sum(noise_of(order[j]["sqnr_db"]) for j in c.layers)  # type: ignore[attr-defined]
    return f"{len(cands)}/{len(cands)} {what} matched to PyTorch layers (graph order)"


@dataclass
class BudgetResult:
    kept: list[Candidate] = field(default_factory=list)
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)  # set name -> metrics at the end
    start: dict[str, dict[str, float]] = field(default_factory=dict)  # full int8
    steps: list[dict[str, Any]] = field(default_factory=list)
    met: bool = False
    builds: int = 0
    unmet: list[str] = field(default_factory=list)


def _unmet(budget: Budget, ms: dict[str, dict[str, float]]) -> list[str]:
    return [f"{name}: {u}" for name, m in ms.items() for u in budget.unmet(m)]


def greedy(candidates: Sequence[Candidate], evaluate: Callable[[list[Candidate]], dict[str, dict[str, float]]],
           budget: Budget, *, max_keep: int = 16, probe: int = 2, log: Callable[[str], None] | None = None
           ) -> BudgetResult:
    """Keep layers until ``budget`` holds on every set ``evaluate`` returns ({set: metrics}).

    ``evaluate(kept)`` builds and measures the artifact with ``kept`` at higher precision. Each step measures the
    next ``probe`` untried candidates by estimated gain per cost and keeps the one that lowers the logit noise
    most per cost (measured); a candidate whose measured gain is none is dropped."""
    res = BudgetResult()
    res.start = cur = evaluate([])
    res.builds = 1
    pool = rank(candidates)
    say = log or (lambda _s: None)
    while _unmet(budget, cur) and pool and len(res.kept) < max_keep:
        tried = []
        for c in pool[:probe]:
            ms = evaluate([*res.kept, c])
            res.builds += 1
            gain = _noise(cur) - _noise(ms)
            tried.append((gain / max(c.cost, 1e-9), gain, c, ms))
            if not _unmet(budget, ms):
                break
        best = max(tried, key=lambda t: (not _unmet(budget, t[3]), t[0]))
        for _, gain, c, _ in tried:
            if c is not best[2] and gain <= 0:
                pool.remove(c)  # measured useless: not tried again
        _, gain, c, ms = best
        pool.remove(c)
        if gain <= 0 and _unmet(budget, ms):
            continue  # no candidate of this round helped: the next ones are tried
        cur = ms
        res.kept.append(c)
        res.steps.append({"keep": c.name, "op": c.op, **{f"{s}_{k}": round(float(m[k]), 4) for s, m in cur.items()
                                                          for k in ("top1_agreement", "sqnr_db")}})
        say(f"budget: keep {c.name} ({c.op}): " + ", ".join(
            f"{s} agreement {m['top1_agreement']:.3f} SQNR {m['sqnr_db']:.1f} dB" for s, m in cur.items()))
    res.unmet = _unmet(budget, cur)
    res.met, res.metrics = not res.unmet, cur
    return res


def _noise(ms: dict[str, dict[str, float]]) -> float:
    return sum(noise_of(m["sqnr_db"]) for m in ms.values())


def held_out_crops(spec, files: Sequence[str]) -> list[np.ndarray]:
    """``CROPS_PER_PHOTO`` inputs per held-out photo, preprocessed like the spec (NCHW float32): centre + 4
    corners of the resized image, each as is and mirrored. The first of each photo is the validator's input."""
    from pathlib import Path

    from mobexport.exporter.preprocess import crop_boxes, open_image, resize_shorter, to_input

    pp = spec.preprocessing
    out = []
    for f in files:
        img = resize_shorter(open_image(Path(f)), pp)
        for box in crop_boxes(img, pp, corners=True):
            x = to_input(img.crop(box), pp)
            out += [x, np.ascontiguousarray(x[..., ::-1])]
    return out


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95 % Wilson score interval of k successes in n."""
    if n == 0:
        return 0.0, 1.0
    p = k / n
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return c - h, c + h
