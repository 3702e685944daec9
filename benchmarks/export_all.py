"""Export one model to several targets (or every target this host can build), go on past failures, optionally
time each runnable artifact with the host harness; one record per target (``mobexport export``).

``export_all(model, "all" | "onnx,tflite-w8a8" | [...], bench=True)`` → ``list[TargetRecord]``. A target is a
target id (``tflite-w8a8``) or a format name meaning its default target (``onnx`` → ``onnx-fp32``); ``all`` is
every target whose converter ``is_available()`` here. A ``MobexportError`` for one target becomes that target's
record (its status and reason); the next target is exported all the same.

The exit code of a run is the highest per-target code (``TargetRecord.exit_code``, ``worst_exit_code``):
0 OK / UNVALIDATED_NO_RUNTIME (and a bench SKIPPED for a runtime missing here) · 1 MISMATCH / LOAD_FAILED at
validation · 2 usage error · 3 SKIPPED: target unavailable here · 4 CONVERT_FAILED, or the artifact failed to
load or run in the benchmark · 5 internal error.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from mobexport.converters import all_targets, formats, get_converter, resolve_target, target_for
from mobexport.exporter.errors import MobexportError, UsageError
from mobexport.exporter.status import Status

ALL = "all"


@dataclass
class TargetRecord:
    """What happened to one target: export status (and reason), artifact, fidelity, timings, benchmark."""

    model: str
    target: str
    status: Status
    reason: str = ""
    artifact: str | None = None
    size_bytes: int | None = None
    fidelity: dict[str, Any] = field(default_factory=dict)
    export_s: float | None = None
    exit_code: int = 0
    runtime: str = ""
    bench_status: Status | None = None
    bench_reason: str = ""
    min_ms: float | None = None
    p50_ms: float | None = None
    runs: int = 0
    result_id: int | None = None  # the stored benchmark record (``store=``)

    @property
    def fidelity_text(self) -> str:
        """``rel 1.2e-07`` for float targets (max |Δ| / output range); ``agree 0.990, 31.2 dB`` for int8."""
        from mobexport.benchmarks.results import fidelity_summary

        return fidelity_summary(self.target, self.fidelity)

    def to_json(self) -> dict[str, Any]:
        return {"model": self.model, "target": self.target, "status": self.status.value, "reason": self.reason,
                "artifact": self.artifact, "size_bytes": self.size_bytes, "fidelity": self.fidelity,
                "fidelity_summary": self.fidelity_text,
                "export_s": None if self.export_s is None else round(self.export_s, 3), "runtime": self.runtime,
                "bench_status": self.bench_status.value if self.bench_status else None,
                "bench_reason": self.bench_reason, "runs": self.runs, "min_ms": self.min_ms, "p50_ms": self.p50_ms,
                "result_id": self.result_id, "exit_code": self.exit_code}


def worst_exit_code(records: Iterable[TargetRecord]) -> int:
    return max((r.exit_code for r in records), default=0)


def select_targets(spec: str | Iterable[str]) -> list[str]:
    """Target ids for ``all``, a comma-separated string or a list of target ids / format names (in order, once
    each). An unknown name is a UsageError with did-you-mean before anything is exported."""
    items = [s.strip() for s in (spec.split(",") if isinstance(spec, str) else spec) if s and s.strip()]
    if not items:
        raise UsageError("--to needs at least one target (a target id, a format name, or 'all')")
    if ALL in items:
        return [t.id for t in all_targets() if get_converter(t.format).is_available().ok]
    out: list[str] = []
    for item in items:
        tid = target_for(item).id if item in formats() else resolve_target(item).id
        if tid not in out:
            out.append(tid)
    return out


def export_all(model: Any, targets: str | Iterable[str] = ALL, *, bench: bool = False, runs: int = 100,
               warmup: int = 10, threads: int | None = 1, out_dir: str | os.PathLike = "exports",
               progress: Callable[[str], None] | None = None, wrap: Callable | None = None, store=None,
               report: Callable[[int, int], None] | None = None, **export_kwargs: Any) -> list[TargetRecord]:
    """Export ``model`` to each of ``targets`` (see ``select_targets``) with ``export()``'s keyword arguments
    (``weights``, ``num_classes``, ``input_size``, ``labels``, ``options``, ...); then, with ``bench``, time each
    artifact whose runtime exists here (``runs`` round trips after ``warmup``), adding each result to ``store``
    (an open results store) as ``mobexport bench`` does; ``report(done, runs)`` follows the timed runs. ``wrap`` (a context-manager factory) surrounds each
    backend call, e.g. to capture the backends' console output."""
    ids = select_targets(targets)
    built: dict = {}  # one build per distinct export: onnx-fp32 once, though both TensorRT targets need it
    records = [_export_one(model, tid, out_dir, progress, wrap, {**export_kwargs, "built": built}) for tid in ids]
    if bench:
        from mobexport.benchmarks.harness import BenchConfig

        cfg = BenchConfig(runs=runs, warmup=warmup, threads=threads)
        cfg.check()
        for rec in records:
            if rec.artifact is not None:
                _bench_one(rec, cfg, progress, wrap, store, report)
    return records


def _export_one(model, tid: str, out_dir, progress, wrap, kwargs) -> TargetRecord:
    import contextlib

    from mobexport.converters.pipeline import export

    name = model if isinstance(model, str) else type(model).__name__
    t0 = time.perf_counter()
    if not resolve_target(tid).needs_calibration:
        kwargs = {k: v for k, v in kwargs.items() if k != "calibration_dir"}  # a calibration folder is int8's
    try:
        with (wrap() if wrap else contextlib.nullcontext()):
            r = export(model, tid, out_dir=out_dir, progress=progress, **kwargs)
    except MobexportError as e:
        status = Status.of_error(e)
        return TargetRecord(name, tid, status, reason=str(e), export_s=time.perf_counter() - t0,
                            exit_code=e.exit_code, runtime=_runtime_note(tid))
    fid = r.fidelity
    reason = "; ".join(fid.get("failures", []))
    if r.status is Status.UNVALIDATED_NO_RUNTIME and not reason:
        reason = f"not validated: {get_converter(resolve_target(tid).format).runtime_available().reason}"
    return TargetRecord(r.model, r.target, r.status, reason=reason, artifact=str(r.artifact),
                        size_bytes=r.manifest.get("size_bytes"), fidelity=fid, export_s=time.perf_counter() - t0,
                        exit_code=r.exit_code, runtime=_runtime_note(tid))


def _runtime_note(tid: str) -> str:
    """The runtime that validates/runs ``tid`` here, or "none here" (the record's reason says why)."""
    conv = get_converter(resolve_target(tid).format)
    return conv.runtime_name or conv.format if conv.runtime_available().ok else "none here"


def _bench_one(rec: TargetRecord, cfg, progress, wrap, store, report) -> None:
    import contextlib
    from pathlib import Path

    from mobexport.benchmarks.harness import run_benchmarks

    try:
        with (wrap() if wrap else contextlib.nullcontext()):
            outcomes = run_benchmarks([str(Path(rec.artifact).parent)], cfg, progress=progress, store=store,
                                      report=report)
    except MobexportError as e:
        rec.bench_status, rec.bench_reason = Status.RUN_FAILED, str(e)
        rec.exit_code = max(rec.exit_code, e.exit_code)
        return
    o = outcomes[0]
    rec.bench_status, rec.bench_reason = o.bench_status, o.reason
    rec.result_id = o.id
    if o.result is not None:
        rec.min_ms, rec.p50_ms, rec.runs = o.result.min_ms, o.result.p50_ms, o.result.runs
        rec.runtime = f"{o.result.runtime} {o.result.runtime_version}"
    elif o.bench_status in (Status.LOAD_FAILED, Status.RUN_FAILED):
        rec.exit_code = max(rec.exit_code, 4)
