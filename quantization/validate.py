"""The one validator: compare an artifact's Runner with the PyTorch deploy model and return a FidelityReport.

Policy is chosen by the target's precision (``state.target.precision``); every check is evaluated and every
failure collected before the status is decided (OK or MISMATCH; RUN_FAILED when the runtime throws).

Tolerances (``range`` = max(ref) − min(ref) of the reference logits over all validation inputs):

* **fp32**: ``max_abs ≤ 1e-3·range + 1e-5`` and cosine ≥ 0.9999. Measured on real conversions: ONNX/ORT and
  LiteRT fp32 differ from PyTorch by ~1e-7 relative (mobileone_s0, mobilenetv3_small_100), i.e. 3–4 orders of
  magnitude inside the bound; a single edited initializer (tests/test_validate.py) lands far outside it.
* **fp16** (fp16 weights): ``max_abs ≤ 1e-2·range + 1e-4`` and cosine ≥ 0.999. Measured fp16-weight errors
  are ~1e-4 relative.
* **int8** (w8a8, full integer): judged on held-out photos (never the calibration images): top-1 agreement
  with the float model ≥ 0.8 and SQNR ≥ 10 dB (cosine reported, not gated). Errors are not gated element-wise:
  int8 logits legitimately differ by a few quantization steps. With **random weights** the logits have no
  confident class (top-1 flips on any noise: 1/14 agreement measured on mobileone_s0 at cos 0.998), so the
  policy ``int8-random-weights`` gates SQNR ≥ 10 dB and cosine ≥ 0.99 instead and reports top-1 ungated.
* **w8** (int8 weights, float activations): ``max_abs ≤ 5e-2·range`` and cosine ≥ 0.99.

A caller may override any threshold through ``state.options["tolerances"]`` (a dict with the keys below);
the report records the policy actually used.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from mobexport.exporter.status import Status

from . import metrics

POLICIES: dict[str, dict[str, float]] = {
    "fp32": {"rtol": 1e-3, "atol": 1e-5, "min_cosine": 0.9999},
    "fp16": {"rtol": 1e-2, "atol": 1e-4, "min_cosine": 0.999},
    "int8": {"min_top1_agreement": 0.8, "min_sqnr_db": 10.0},
    # random weights: logits have no confident class, so top-1 flips on noise; gate on signal fidelity only
    "int8-random-weights": {"min_sqnr_db": 10.0, "min_cosine": 0.99},
    "w8": {"rtol": 5e-2, "atol": 1e-4, "min_cosine": 0.99},
}
MAX_FLOAT_HOLDOUT = 8  # float targets: the example input plus up to this many held-out photos


@dataclass
class FidelityReport:
    precision: str
    status: Status
    policy: dict[str, float] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    inputs: str = ""  # what was compared: "example + 6 held-out photos"
    samples: int = 0
    policy_name: str = ""

    @property
    def ok(self) -> bool:
        return self.status is Status.OK

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["status"] = self.status.value
        d["metrics"] = {k: _finite(v) for k, v in self.metrics.items()}
        return d


def _finite(v: float):
    """JSON has no inf: an exact match has SQNR 'inf'."""
    return v if np.isfinite(v) else ("inf" if v > 0 else "-inf")


def validation_inputs(state) -> tuple[list[np.ndarray], str]:
    """int8: the held-out photos only. Float: the example input plus a few held-out photos (if any)."""
    hold = list(state.holdout)
    if state.target.precision == "int8":
        return hold, f"{len(hold)} held-out photos"
    ex = state.example_input
    ex = ex.detach().cpu().numpy() if hasattr(ex, "detach") else np.asarray(ex)
    hold = hold[:MAX_FLOAT_HOLDOUT]
    return [ex.astype(np.float32)] + hold, f"example input + {len(hold)} held-out photos"


def reference_outputs(model, inputs: list[np.ndarray]) -> np.ndarray:
    import torch

    with torch.no_grad():
        outs = [model(torch.from_numpy(np.ascontiguousarray(x))).detach().cpu().numpy() for x in inputs]
    return np.concatenate(outs, axis=0)


def judge(precision: str, ref: np.ndarray, out: np.ndarray, policy: dict[str, float] | None = None
          ) -> tuple[dict[str, float], list[str], dict[str, float]]:
    """(metrics, failures, policy) for arrays of reference and artifact outputs."""
    pol = dict(POLICIES[precision]) if policy is None else dict(policy)
    if precision not in POLICIES:
        raise ValueError(f"no validation policy for precision '{precision}'")
    m = metrics.all_metrics(ref, out)
    fails: list[str] = []
    if "rtol" in pol:
        bound = pol["rtol"] * m["output_range"] + pol.get("atol", 0.0)
        m["allowed_max_abs"] = bound
        if not m["max_abs"] <= bound:
            fails.append(f"max_abs {m['max_abs']:.3g} > {bound:.3g} (rtol {pol['rtol']:g} x output range "
                         f"{m['output_range']:.3g} + atol {pol.get('atol', 0.0):g})")
    if "min_cosine" in pol and not m["cosine"] >= pol["min_cosine"]:
        fails.append(f"cosine {m['cosine']:.6f} < {pol['min_cosine']}")
    if "min_top1_agreement" in pol and not m["top1_agreement"] >= pol["min_top1_agreement"]:
        fails.append(f"top-1 agreement {m['top1_agreement']:.3f} < {pol['min_top1_agreement']}")
    if "min_sqnr_db" in pol and not m["sqnr_db"] >= pol["min_sqnr_db"]:
        fails.append(f"SQNR {m['sqnr_db']:.2f} dB < {pol['min_sqnr_db']} dB")
    return m, fails, pol


def policy_name(state) -> str:
    random = state.weights is None
    return "int8-random-weights" if state.target.precision == "int8" and random else state.target.precision


def validate(runner, state) -> FidelityReport:
    """Run every validation input through ``runner`` and judge it against ``state.model`` (PyTorch).

    Structural problems already found (``state.reports['structure']``) are counted as failures too."""
    precision = state.target.precision
    policy = {**POLICIES[policy_name(state)], **state.options.get("tolerances", {})}
    inputs, what = validation_inputs(state)
    structure = [f"structure: {p}" for p in state.reports.get("structure", [])]
    if not inputs:
        return FidelityReport(precision, Status.MISMATCH, policy, {},
                              structure + ["no validation inputs (int8 needs held-out photos)"], what, 0)
    ref = reference_outputs(state.model, inputs)
    try:
        out = np.concatenate([np.asarray(runner.run(x), dtype=np.float32).reshape(1, -1) for x in inputs])
    except Exception as e:  # the runtime's own exception types vary per backend
        return FidelityReport(precision, Status.RUN_FAILED, policy, {},
                              structure + [f"runtime failed: {type(e).__name__}: {e}"], what, len(inputs))
    m, fails, policy = judge(precision, ref.reshape(len(inputs), -1), out, policy)
    fails = structure + fails
    return FidelityReport(precision, Status.OK if not fails else Status.MISMATCH, policy, m, fails, what,
                          len(inputs), policy_name(state))


def unvalidated(state, reason: str) -> FidelityReport:
    """No runtime on this host (Core ML off macOS, TensorRT without CUDA): record why, never fake a pass."""
    structure = [f"structure: {p}" for p in state.reports.get("structure", [])]
    status = Status.MISMATCH if structure else Status.UNVALIDATED_NO_RUNTIME
    return FidelityReport(state.target.precision, status, {}, {}, structure + [reason] if structure else [],
                          f"not run: {reason}", 0)
