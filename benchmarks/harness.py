"""The host benchmark harness: min-of-N round trips of exported artifacts (and a PyTorch eager baseline).

Protocol per artifact: load (timed → ``load_ms``); preallocate the input from the manifest's shape/dtype
(batch replaced by ``--batch``; converted once with ``Runner.native_input``); one run plus ``warmup`` runs;
then ``runs`` timed round trips ``set_input → invoke → get_output`` with ``time.perf_counter_ns`` and the
garbage collector off (``benchmarks/worker.py``). The headline is the minimum — the stable statistic on a
shared machine — with p50/p90/mean/std/max, peak RSS and every raw sample kept.

The runtime comes from the registry (``converters/runtimes``): the format's default, or ``--runtime NAME``.
Each artifact (and each PyTorch baseline) is timed in a fresh spawned worker process that imports only its
runtime, so load time and memory are the model's own; a worker that dies or hangs is a RUN_FAILED outcome with
the reason and the run goes on. ``BenchConfig.in_process`` times in this process instead (the overhead script).

An artifact whose runtime is missing here (Core ML off macOS, TensorRT without its libraries) is reported
as SKIPPED with the runtime's reason — never timed, never given a number.
"""

from __future__ import annotations

import contextlib
import os
import platform
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from mobexport.benchmarks.results import BenchmarkResult
from mobexport.benchmarks.worker import PeakRSS, measure, pinned, run_in_worker, time_round_trips, warm_up
from mobexport.converters.base import Artifact
from mobexport.exporter.errors import UsageError
from mobexport.exporter.status import Status

__all__ = ["BenchConfig", "BenchOutcome", "PeakRSS", "bench_artifact", "bench_torch", "find_artifacts",
           "float_input", "pinned", "run_benchmarks", "time_round_trips", "warm_up"]

MANIFEST = "manifest.json"
_DTYPES = {"float32": np.float32, "float16": np.float16, "int8": np.int8, "uint8": np.uint8}


@dataclass
class BenchConfig:
    runs: int = 1000
    warmup: int = 20
    threads: int | None = 1  # same intra-op thread count for every runtime, so numbers compare
    batch: int = 1
    pin_cores: list[int] | None = None
    cooldown_s: float = 0.0
    runtime: str | None = None  # a registered runtime's name; None: each format's default
    runtime_options: dict[str, Any] = field(default_factory=dict)
    in_process: bool = False  # time in this process (the overhead script); default: a fresh worker each
    timeout_s: float = 1800.0  # a worker with no result by then is killed: RUN_FAILED
    profile: bool = False  # after timing: a per-layer profile beside the artifact, where the runtime has one

    def check(self) -> None:
        if self.runs < 1 or self.warmup < 0 or self.batch < 1 or self.cooldown_s < 0 or self.timeout_s <= 0:
            raise UsageError("need --runs >= 1, --warmup >= 0, --batch >= 1, --cooldown >= 0, --timeout > 0")
        if self.threads is not None and self.threads < 1:
            raise UsageError("--threads must be >= 1")
        with pinned(self.pin_cores):  # a bad --pin-cores is a usage error here, before any worker starts
            pass


@dataclass
class BenchOutcome:
    """What happened to one artifact: a result (bench_status OK) or a reason (SKIPPED, LOAD/RUN_FAILED)."""

    model: str
    target: str
    source: str
    bench_status: Status
    reason: str = ""
    result: BenchmarkResult | None = None
    id: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        if self.result is None:
            return {"model": self.model, "target": self.target, "artifact": self.source,
                    "bench_status": self.bench_status.value, "reason": self.reason, "runs": 0,
                    "min_ms": None, "p50_ms": None, "harness": "host"}
        return {"id": self.id, "artifact": self.source, "bench_status": self.bench_status.value,
                **self.result.to_dict(samples=False)}


# ---------------------------------------------------------------- the protocol (benchmarks/worker.py)

def float_input(manifest: dict[str, Any], batch: int, seed: int = 0) -> np.ndarray:
    """A float NCHW input of the manifest's shape (batch replaced) — what ``Runner.native_input`` expects."""
    inp = manifest.get("input") or (manifest.get("inputs") or [{}])[0]
    shape = inp.get("shape")
    if not shape or len(shape) != 4 or not all(isinstance(d, int) and d > 0 for d in shape[1:]):
        raise UsageError(f"manifest of {manifest.get('model')}/{manifest.get('target')} has no usable input "
                         f"shape: {shape!r}")
    if inp.get("dtype", "float32") not in _DTYPES:
        raise UsageError(f"unsupported input dtype {inp.get('dtype')!r} in manifest")
    n, a, b, c = batch, *shape[1:]
    nchw = (n, c, a, b) if str(inp.get("layout", "NCHW")).upper() == "NHWC" else (n, a, b, c)
    return np.random.default_rng(seed).standard_normal(nchw, dtype=np.float32)


# ---------------------------------------------------------------- environment

def cpu_name() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith(("model name", "hardware", "cpu model")):
                return line.split(":", 1)[1].strip()[:128]
    return (platform.processor() or platform.machine())[:128]


def host_info() -> dict[str, str]:
    return {"device_model": f"{socket.gethostname()}-{platform.machine()}"[:128], "os": platform.system()[:64],
            "os_version": platform.release()[:64], "chip": cpu_name()}


def tool_versions(extra: dict[str, str] | None = None) -> dict[str, str]:
    from mobexport.converters.base import package_versions

    out = {"python": platform.python_version()}
    out.update(package_versions(("mobexport", "numpy", "torch", "onnxruntime", "ai-edge-litert", "coremltools",
                                 "tensorrt")))
    out.update(extra or {})
    return {str(k)[:64]: str(v)[:64] for k, v in out.items()}


def _git_commit(manifest: dict[str, Any]) -> str | None:
    from mobexport.converters.manifest import git_commit

    return git_commit() or manifest.get("git_commit")


# ---------------------------------------------------------------- artifacts

def find_artifacts(path: str | os.PathLike) -> list[Artifact]:
    """An export dir (``exports/m/t``), an artifact file/bundle beside its manifest, or a folder holding
    several export dirs (``exports/`` or ``exports/m``) → Artifacts with their manifests."""
    from mobexport.converters.manifest import read_manifest

    p = Path(path)
    if not p.exists():
        raise UsageError(f"no such artifact or export folder: {p}")
    if p.is_dir() and (p / MANIFEST).is_file():
        dirs = [p]
    elif (p.parent / MANIFEST).is_file():
        dirs = [p.parent]
    else:
        found = {m.parent for pat in ("*/" + MANIFEST, "*/*/" + MANIFEST) for m in p.glob(pat)}
        # hidden folders are an export's staging or replaced copy (converters/pipeline.py), never a result
        dirs = sorted(d for d in found if not any(part.startswith(".") for part in d.relative_to(p).parts))
    if not dirs:
        raise UsageError(f"{p} holds no manifest.json: pass an export folder like exports/<model>/<target>")
    out = []
    for d in dirs:
        m = read_manifest(d)
        name = m.get("artifact")
        if not name or not (d / name).exists():
            raise UsageError(f"{d / MANIFEST} names artifact {name!r}, which is not there")
        out.append(Artifact(m.get("target", d.name), d / name, d / MANIFEST, m))
    return out


def _runtime(fmt: str, cfg: BenchConfig):
    """(runtime, "") when this host can run ``fmt`` with the chosen runtime, else (None, the reason)."""
    from mobexport.converters.runtimes import choose

    rt = choose(fmt, cfg.runtime)  # UsageError: an unknown runtime, or one that does not run this format
    avail = rt.available()  # imports the runtime here; the worker imports it again, alone
    if not avail.ok:
        return None, f"{rt.name} runtime unavailable: {avail.reason}"
    return rt, ""


def _sha256(artifact: Artifact) -> str:
    from mobexport.converters.manifest import sha256_path

    actual = sha256_path(artifact.path)
    expected = artifact.manifest.get("sha256")
    if expected and expected != actual:
        raise UsageError(f"{artifact.path} changed since export (sha256 {actual[:12]} ≠ manifest "
                         f"{str(expected)[:12]}): re-export it")
    return actual


def _job(rt, path: str, manifest: dict[str, Any], x: np.ndarray, cfg: BenchConfig) -> dict[str, Any]:
    import inspect

    return {"runtime": rt.name, "runtime_module": type(rt).__module__, "runtime_file": inspect.getfile(type(rt)),
            "artifact_path": path, "manifest": manifest, "x": x, "threads": cfg.threads,
            "options": cfg.runtime_options, "runs": cfg.runs, "warmup": cfg.warmup, "pin_cores": cfg.pin_cores,
            "reset_peak": cfg.in_process, "profile_dir": str(Path(path).parent) if cfg.profile and path else None}


def artifact_job(artifact: Artifact, cfg: BenchConfig) -> dict[str, Any]:
    """The job ``benchmarks.worker.measure`` runs for ``artifact`` (its runtime chosen as ``bench`` would)."""
    rt, reason = _runtime(artifact.target.split("-", 1)[0], cfg)
    if rt is None:
        raise UsageError(reason)
    return _job(rt, str(artifact.path), artifact.manifest, float_input(artifact.manifest, cfg.batch), cfg)


def _measure(job: dict[str, Any], cfg: BenchConfig, report: Callable[[int, int], None] | None = None
             ) -> dict[str, Any]:
    return measure(job, report) if cfg.in_process else run_in_worker(job, cfg.timeout_s, report)


def time_file(path: str | os.PathLike, fmt: str, manifest: dict[str, Any], x: np.ndarray,
              cfg: BenchConfig) -> dict[str, Any]:
    """A file of format ``fmt`` that is no export folder (a lookup-table block) timed as ``bench`` times an
    artifact: ``cfg``'s runtime, worker or in-process, the one loop. The worker's result dict (``error`` and
    ``reason`` when it failed); UsageError where that runtime cannot run here."""
    rt, reason = _runtime(fmt, cfg)
    if rt is None:
        raise UsageError(reason)
    return _measure(_job(rt, str(path), manifest, x, cfg), cfg)


def bench_artifact(artifact: Artifact, cfg: BenchConfig,
                   report: Callable[[int, int], None] | None = None) -> BenchOutcome:
    m = artifact.manifest
    model, target, src = m.get("model", "?"), artifact.target, str(artifact.path)
    sha = _sha256(artifact)
    x_float = float_input(m, cfg.batch)
    rt, reason = _runtime(target.split("-", 1)[0], cfg)
    if rt is None:
        return BenchOutcome(model, target, src, Status.SKIPPED, reason)
    out = _measure(_job(rt, src, m, x_float, cfg), cfg, report)
    return _outcome(out, src, cfg, dict(
        model=model, weights=str(m.get("weights") or "unknown")[:256], target=target, artifact_sha256=sha,
        validation_status=str(m.get("status", Status.UNVALIDATED_NO_RUNTIME)),
        tool_versions=tool_versions({**(m.get("tool_versions") or {})}), git_commit=_git_commit(m)))


def _outcome(out: dict[str, Any], src: str, cfg: BenchConfig, fields: dict[str, Any]) -> BenchOutcome:
    model, target = fields["model"], fields["target"]
    if "error" in out:
        return BenchOutcome(model, target, src, Status(out["error"]), out["reason"])
    growth = out.get("rss_growth_at_load_mb")
    notes = "; ".join(n for n in (
        out["pin_note"], f"native input {out['input_dtype']} {out['input_shape']}",
        "in-process" if cfg.in_process else "own worker process",
        None if growth is None else f"RSS +{growth:.1f} MB at load", _profile_note(out.get("profile"))) if n)
    result = BenchmarkResult.from_samples(
        out["samples"], harness="host", **host_info(), runtime=out["runtime"] or "unknown",
        runtime_version=out["runtime_version"][:64], compute_unit=str(out["compute_unit"])[:64],
        input_shape=out["input_shape"], batch_size=cfg.batch, warmup=cfg.warmup, runs=cfg.runs,
        peak_rss_mb=out["peak_rss_mb"], load_ms=out["load_ms"], threads=out["threads"],
        timestamp=datetime.now(timezone.utc).isoformat(timespec="milliseconds"), notes=notes, **fields)
    worker = {k: out.get(k) for k in ("pid", "torch_imported", "rss_before_load_mb", "rss_growth_at_load_mb",
                                      "profile")}
    return BenchOutcome(model, target, src, Status.OK, result=result, extra={"worker": worker})


def _profile_note(profile: dict[str, Any] | None) -> str | None:
    if not profile:
        return None
    return f"per-layer profile: {profile['path']}" if "path" in profile else profile["note"]


# ---------------------------------------------------------------- PyTorch eager baseline (deploy form)

def bench_torch(model_name: str, cfg: BenchConfig, *, weights: str | None = None, seed: int = 0,
                bn_seed: int | None = None, report: Callable[[int, int], None] | None = None) -> BenchOutcome:
    """Target ``torch-fp32``: the re-parameterized (deploy) form in PyTorch eager mode (the ``torch`` runtime,
    which rebuilds the model and hashes its state dict), as a baseline."""
    from mobexport.api import get_spec

    spec = get_spec(model_name)
    torch_cfg = BenchConfig(**{**cfg.__dict__, "runtime": "torch", "runtime_options": {}})
    rt, reason = _runtime("torch", torch_cfg)
    if rt is None:
        return BenchOutcome(spec.name, "torch-fp32", f"torch:{spec.name}", Status.SKIPPED, reason)
    x = np.random.default_rng(0).standard_normal((cfg.batch, *spec.input_size), dtype=np.float32)
    # the same weights as `mobexport <format> MODEL` exports: the checkpoint, or the seed's random weights
    manifest = {"model": spec.name, "weights": weights, "seed": seed if bn_seed is None else bn_seed}
    out = _measure(_job(rt, "", manifest, x, torch_cfg), torch_cfg, report)
    fields = dict(model=spec.name, weights=out.get("weights_tag") or "unknown", target="torch-fp32",
                  artifact_sha256=out.get("artifact_sha256") or "0" * 64, validation_status=Status.OK.value,
                  tool_versions=tool_versions(), git_commit=_git_commit({}))
    return _outcome(out, f"torch:{spec.name}", torch_cfg, fields)


# ---------------------------------------------------------------- many artifacts → store / server

def run_benchmarks(artifacts: list[str], cfg: BenchConfig, *, torch_models: list[str] = (), store=None,
                   post_url: str | None = None, token: str | None = None,
                   progress: Callable[[str], None] | None = None,
                   report: Callable[[int, int], None] | None = None) -> list[BenchOutcome]:
    """Bench every artifact (then every ``torch_models`` baseline) with a cool-down between them; store each
    result (``store.add``) and post it to a mobexport server when asked. ``progress(message)`` as each starts;
    ``report(done, runs)`` as its timed runs go (from the worker, between blocks of runs)."""
    cfg.check()
    found = [a for p in artifacts for a in find_artifacts(p)]
    jobs: list[tuple[str, Callable[[], BenchOutcome], dict | None]] = [
        (f"{a.manifest.get('model')}/{a.target}", lambda a=a: bench_artifact(a, cfg, report), a.manifest) for a in found]
    jobs += [(f"{m}/torch-fp32", lambda m=m: bench_torch(m, cfg, report=report), None) for m in torch_models]
    outcomes = []
    for i, (label, job, manifest) in enumerate(jobs):
        if i and cfg.cooldown_s:
            time.sleep(cfg.cooldown_s)
        if progress:
            progress(f"[{i + 1}/{len(jobs)}] {label}: {cfg.runs} runs after {cfg.warmup} warm-up")
        out = job()
        if out.result is not None and store is not None:
            out.id = store.add(out.result)
            if manifest is not None:  # its size, weights and fidelity, shown beside the latency by `results`
                from mobexport.benchmarks.store.artifacts import add_artifact

                add_artifact(store, manifest)
        if out.result is not None and post_url:
            from mobexport.benchmarks.server import post_result

            out.extra["posted_id"] = post_result(post_url, out.result.to_dict(), token=token)
        outcomes.append(out)
    return outcomes
