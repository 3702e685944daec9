"""What every converter's fidelity-budget loop shares (``--int8 --min-agreement A`` / ``--min-sqnr D``, issue #24):
the gate from the options, the held-out sets and their float reference, the model whose float islands carry the
float model's own biases, a builder base that measures an artifact on the held-out sets and times it with the one
timing loop, and the ``int8_budget`` report with its notice line. The backends (``tflite_budget``,
``tensorrt_budget``) supply the candidates and how to build an artifact with some of them kept; the greedy loop
itself is backend-independent (``quantization.budget.greedy``).
"""

from __future__ import annotations

import sys
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

import numpy as np

from .base import ExportState, GeneralOptions

QDQ_MACS = 16  # estimated cost of quantizing or dequantizing one activation element, in MACs
LATENCY_RUNS, LATENCY_WARMUP = 50, 5


def budget_of(state: ExportState):
    from mobexport.quantization.budget import Budget

    g = GeneralOptions.of(state)
    return Budget(g.min_agreement, g.min_sqnr)


def sensitivity(state: ExportState, cands: list, what: str = "weighted ops") -> str:
    """``quantization.budget.name_after_modules`` on the export's model and photos."""
    from mobexport.quantization.budget import name_after_modules

    return name_after_modules(cands, state.model, state.calibration, state.holdout, what)


def uncorrected(source, model):
    """A copy of the bias-corrected ``source`` with every Conv2d / Linear bias set back to ``model``'s (zeros where
    ``model`` has none): the same module structure, so the same converted graph. A layer kept in float takes its
    bias from this copy: bias correction compensates int8 weight rounding, which a float layer does not have (with
    every layer of MobileNetV2 in float and corrected biases, top-1 agreement with float was 0.934; with its own,
    0.990)."""
    import copy

    import torch
    from torch import nn

    raw = copy.deepcopy(source)
    mods = dict(model.named_modules())
    with torch.no_grad():
        for name, m in raw.named_modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)) and m.bias is not None:
                ref = getattr(mods.get(name), "bias", None)
                m.bias.copy_(ref if ref is not None else torch.zeros_like(m.bias))
    return raw


def held_out_sets(state: ExportState) -> dict:
    """Inputs (held-out photos x 10 crops) and, per set, (indices, float reference): ``crops`` = all of them,
    ``photos`` = the first crop of each photo (exactly the validator's inputs)."""
    from mobexport.quantization.budget import CROPS_PER_PHOTO, held_out_crops
    from mobexport.quantization.calibration import image_sets
    from mobexport.quantization.validate import reference_outputs

    files = image_sets(state.spec, state.options.get("calibration_dir")).holdout_files
    xs = held_out_crops(state.spec, files)
    ref = reference_outputs(state.model, xs).reshape(len(xs), -1)
    photos = np.arange(0, len(xs), CROPS_PER_PHOTO)
    return {"inputs": xs, "files": len(files),
            "refs": {"crops": (np.arange(len(xs)), ref), "photos": (photos, ref[photos])}}


def say(state: ExportState):
    import time

    t0 = time.monotonic()
    return lambda s: print(f"notice: {state.target.id}: [{time.monotonic() - t0:.0f} s] {s}", file=sys.stderr,
                           flush=True)


class MeasuringBuilder(ABC):
    """Base of a backend's builder: ``build(kept) -> Path`` and ``runner(path)`` come from the backend; measuring
    on the held-out sets and timing (the one timing loop, 1 thread) are the same for all."""

    def __init__(self, state: ExportState, sets: dict):
        self.state, self.sets = state, sets
        self.paths: dict[tuple, Path] = {}

    @abstractmethod
    def build(self, kept: list) -> Path:
        """The artifact with the ``kept`` candidates at higher precision (cached per set in ``paths``)."""

    @abstractmethod
    def runner(self, path: Path):
        """A loaded runner of the artifact at ``path``, 1 thread."""

    def evaluate(self, kept: list) -> dict[str, dict[str, float]]:
        from mobexport.quantization import metrics

        runner = self.runner(self.build(kept))
        try:
            out = np.concatenate([np.asarray(runner.run(x), np.float32).reshape(1, -1) for x in self.sets["inputs"]])
        finally:
            runner.close()
        return {name: metrics.all_metrics(ref, out[idx]) for name, (idx, ref) in self.sets["refs"].items()}

    def latency_ms(self, path: Path) -> float:
        from .runtimes import time_round_trips, warm_up

        runner = self.runner(path)
        try:
            x = runner.native_input(self.sets["inputs"][0])
            warm_up(runner, x, LATENCY_WARMUP)
            return min(time_round_trips(runner, x, LATENCY_RUNS))
        finally:
            runner.close()


def run(state: ExportState, builder: MeasuringBuilder, cands: list, what: str, out_path: Path, log):
    """Rank ``cands`` (named after the PyTorch modules), run the greedy loop, copy the chosen artifact to
    ``out_path``; ``log``: the loop's ``say`` line writer. Returns (result, full-int8 ms, budget ms, what the
    sensitivity matched)."""
    import shutil

    from mobexport.quantization.budget import greedy

    log(f"{len(builder.sets['inputs'])} held-out crops and their float reference")
    matched = sensitivity(state, cands, what)
    log(f"sensitivity of {len(cands)} {what}: {matched}")
    res = greedy(cands, builder.evaluate, budget_of(state), max_keep=GeneralOptions.of(state).max_keep, log=log)
    final = builder.build(res.kept)
    full_ms, budget_ms = builder.latency_ms(builder.build([])), builder.latency_ms(final)
    shutil.copyfile(final, out_path)
    return res, full_ms, budget_ms, matched


def report(state: ExportState, res, cands: list, sets: dict, full_ms: float, budget_ms: float, matched: str,
           protocol: str, kept_as: str, segment_extra=lambda c: {}) -> dict[str, Any]:
    """The manifest's ``int8_budget`` entry (also put into ``state.reports``), the validator thresholds into
    ``state.options['tolerances']``, and the notice line; ``kept_as`` says what a kept layer became."""
    budget, keep_as = budget_of(state), GeneralOptions.of(state).keep_as
    state.options["tolerances"] = {**state.options.get("tolerances", {}), **budget.tolerances()}
    r2 = lambda m: {k: round(float(m[k]), 4) for k in ("top1_agreement", "sqnr_db", "cosine")}  # noqa: E731
    rep = {
        "budget": budget.describe(), "met": res.met, "unmet": res.unmet, "keep_as": keep_as,
        "layers_kept": list(dict.fromkeys(n for c in res.kept for n in c.layer_names)),
        "segments_kept": [{"layers": c.name, "ops": c.op, "macs": int(c.macs), **segment_extra(c)} for c in res.kept],
        "reached": {s: r2(m) for s, m in res.metrics.items()},
        "full_int8": {s: r2(m) for s, m in res.start.items()},
        "held_out": f"{sets['files']} held-out photos x 10 crops (crops); their centre crops (photos: the "
                    "validator's inputs)",
        "latency": {"full_int8_ms": round(full_ms, 3), "budget_ms": round(budget_ms, 3),
                    "cost_pct": round(100 * (budget_ms / full_ms - 1), 1),
                    "protocol": f"{protocol}, 1 thread, min of {LATENCY_RUNS} after {LATENCY_WARMUP}, at export"},
        "steps": res.steps, "builds": res.builds, "candidates": len(cands), "sensitivity": matched,
        "ranking": "estimated gain (PyTorch per-layer sensitivity: logit noise power) per estimated cost (MACs + "
                   f"{QDQ_MACS} per quantized/dequantized element); each step builds the next 2 and keeps the one "
                   "with the most measured noise reduction per cost",
    }
    state.reports["int8_budget"] = rep
    lat = rep["latency"]
    print(f"notice: {state.target.id}: fidelity budget {budget.describe()} {'met' if res.met else 'NOT met'}: "
          f"{len(rep['layers_kept'])} layer(s) kept as {kept_as} ({', '.join(rep['layers_kept']) or 'none'}); "
          f"crops agreement {res.metrics['crops']['top1_agreement']:.3f}, SQNR {res.metrics['crops']['sqnr_db']:.1f} "
          f"dB; {protocol.split(',')[0]} latency {lat['budget_ms']:.2f} ms vs full int8 {lat['full_int8_ms']:.2f} ms "
          f"({lat['cost_pct']:+.1f} %)", file=sys.stderr)
    return rep
