"""The host benchmark harness: min-of-N round trips of exported artifacts (and a PyTorch eager baseline).

Protocol per artifact: load (timed → ``load_ms``); preallocate the input from the manifest's shape/dtype
(batch replaced by ``--batch``; converted once with ``Runner.native_input``); one run plus ``warmup`` runs;
then ``runs`` timed round trips ``set_input → invoke → get_output`` with ``time.perf_counter_ns`` and the
garbage collector off. The headline is the minimum — the stable statistic on a shared machine — with p50/p90/mean/std/max, peak RSS and every raw sample kept.

An artifact whose runtime is missing here (Core ML off macOS, TensorRT without its libraries) is reported
as SKIPPED with the converter's reason — never timed, never given a number.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import os
import platform
import resource
import socket
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from mobexport.benchmarks.results import BenchmarkResult
from mobexport.converters.base import Artifact, Runner
from mobexport.exporter.errors import MobexportError, UsageError
from mobexport.exporter.status import Status

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

    def check(self) -> None:
        if self.runs < 1 or self.warmup < 0 or self.batch < 1 or self.cooldown_s < 0:
            raise UsageError("need --runs >= 1, --warmup >= 0, --batch >= 1, --cooldown >= 0")
        if self.threads is not None and self.threads < 1:
            raise UsageError("--threads must be >= 1")


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


# ---------------------------------------------------------------- the protocol

def time_round_trips(runner: Runner, x: np.ndarray, runs: int) -> list[float]:
    """``runs`` timed round trips (set input → invoke → read output), milliseconds, in run order."""
    pc, set_input, invoke, get_output = time.perf_counter_ns, runner.set_input, runner.invoke, runner.get_output
    ns = [0] * runs
    gc_was_on = gc.isenabled()
    gc.disable()
    try:
        for i in range(runs):
            t0 = pc()
            set_input(x)
            invoke()
            get_output()
            ns[i] = pc() - t0
    finally:
        if gc_was_on:
            gc.enable()
    return [v / 1e6 for v in ns]


def warm_up(runner: Runner, x: np.ndarray, warmup: int) -> np.ndarray:
    """One checked run, then ``warmup`` more; returns the first output."""
    runner.set_input(x)
    runner.invoke()
    y = np.asarray(runner.get_output())
    if y.size == 0 or (y.dtype.kind == "f" and not np.isfinite(y).all()):
        raise RuntimeError(f"first run produced {'no' if y.size == 0 else 'non-finite'} output")
    for _ in range(warmup):
        runner.set_input(x)
        runner.invoke()
        runner.get_output()
    return y


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

class PeakRSS:
    """Peak resident memory since ``reset`` (Linux: VmHWM after clear_refs; elsewhere the process peak)."""

    def reset(self) -> None:
        with contextlib.suppress(OSError):
            Path("/proc/self/clear_refs").write_text("5")

    def peak_mb(self) -> float:
        with contextlib.suppress(OSError, ValueError):
            for line in Path("/proc/self/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak / (1 << 20) if sys.platform == "darwin" else peak / 1024


@contextlib.contextmanager
def pinned(cores: list[int] | None) -> Iterator[str]:
    """Pin this process to ``cores`` for the duration (os.sched_setaffinity); yields a note for the record."""
    if not cores:
        yield ""
        return
    if not hasattr(os, "sched_setaffinity"):
        raise UsageError(f"--pin-cores is not supported on {sys.platform} (no os.sched_setaffinity)")
    before = os.sched_getaffinity(0)
    if not set(cores) <= before:
        raise UsageError(f"--pin-cores {cores}: this process may only use cores {sorted(before)}")
    os.sched_setaffinity(0, set(cores))
    try:
        yield f"pinned to cores {sorted(set(cores))}"
    finally:
        os.sched_setaffinity(0, before)


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


def _converter(artifact: Artifact):
    """(converter, "") when this host can run the artifact, else (None, the converter's reason)."""
    from mobexport.converters import get_converter

    fmt = artifact.target.split("-", 1)[0]
    try:
        conv = get_converter(fmt)
    except MobexportError as e:
        return None, str(e)
    avail = conv.runtime_available()  # imports the runtime, so load_ms below excludes Python imports
    if not avail.ok:
        return None, f"{conv.runtime_name or fmt} runtime unavailable: {avail.reason}"
    return conv, ""


def _sha256(artifact: Artifact) -> str:
    from mobexport.converters.manifest import sha256_path

    actual = sha256_path(artifact.path)
    expected = artifact.manifest.get("sha256")
    if expected and expected != actual:
        raise UsageError(f"{artifact.path} changed since export (sha256 {actual[:12]} ≠ manifest "
                         f"{str(expected)[:12]}): re-export it")
    return actual


def bench_artifact(artifact: Artifact, cfg: BenchConfig) -> BenchOutcome:
    m = artifact.manifest
    model, target, src = m.get("model", "?"), artifact.target, str(artifact.path)
    sha = _sha256(artifact)
    x_float = float_input(m, cfg.batch)
    conv, reason = _converter(artifact)
    if conv is None:
        return BenchOutcome(model, target, src, Status.SKIPPED, reason)
    rss = PeakRSS()
    rss.reset()
    t0 = time.perf_counter_ns()
    try:
        runner = conv.load(artifact, threads=cfg.threads)
    except Exception as e:  # the runtime refused the artifact
        return BenchOutcome(model, target, src, Status.LOAD_FAILED, f"{type(e).__name__}: {e}")
    load_ms = (time.perf_counter_ns() - t0) / 1e6
    try:
        return _timed(runner, x_float, cfg, rss, dict(
            model=model, weights=str(m.get("weights") or "unknown")[:256], target=target, artifact_sha256=sha,
            threads=runner.threads, load_ms=load_ms, validation_status=str(m.get("status", Status.UNVALIDATED_NO_RUNTIME)),
            tool_versions=tool_versions({**(m.get("tool_versions") or {})}), git_commit=_git_commit(m)), src)
    finally:
        runner.close()


def _timed(runner: Runner, x_float: np.ndarray, cfg: BenchConfig, rss: PeakRSS, fields: dict[str, Any],
           src: str) -> BenchOutcome:
    model, target = fields["model"], fields["target"]
    try:
        x = runner.native_input(x_float)
        with pinned(cfg.pin_cores) as pin_note:
            warm_up(runner, x, cfg.warmup)
            samples = time_round_trips(runner, x, cfg.runs)
    except MobexportError:
        raise
    except Exception as e:
        return BenchOutcome(model, target, src, Status.RUN_FAILED, f"{type(e).__name__}: {e}")
    notes = "; ".join(n for n in (pin_note, f"native input {x.dtype} {list(x.shape)}") if n)
    result = BenchmarkResult.from_samples(
        samples, harness="host", **host_info(), runtime=runner.runtime or "unknown",
        runtime_version=str(runner.runtime_version or "unknown")[:64], compute_unit=runner.compute_unit[:64],
        input_shape=list(x.shape), batch_size=cfg.batch, warmup=cfg.warmup, runs=cfg.runs,
        peak_rss_mb=rss.peak_mb(), timestamp=datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
        notes=notes, **fields)
    return BenchOutcome(model, target, src, Status.OK, result=result)


# ---------------------------------------------------------------- PyTorch eager baseline (deploy form)

class TorchRunner(Runner):
    runtime = "torch"
    compute_unit = "cpu"

    def __init__(self, model, threads: int | None = None):
        import torch

        self.model, self.threads = model.eval(), threads
        self.runtime_version = torch.__version__
        self._x = self._y = None

    def native_input(self, x: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(x, dtype=np.float32)

    def set_input(self, x: np.ndarray) -> None:
        import torch

        self._x = torch.from_numpy(x)

    def invoke(self) -> None:
        import torch

        with torch.inference_mode():
            self._y = self.model(self._x)

    def get_output(self) -> np.ndarray:
        return self._y.numpy()


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    import torch

    before = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def state_dict_sha256(model) -> str:
    h = hashlib.sha256()
    for k, v in model.state_dict().items():
        h.update(k.encode() + b"\0" + v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def bench_torch(model_name: str, cfg: BenchConfig, *, weights: str | None = None, seed: int = 0,
                bn_seed: int | None = None) -> BenchOutcome:
    """Target ``torch-fp32``: the re-parameterized (deploy) form in PyTorch eager mode, as a baseline."""
    import torch

    from mobexport.api import get_spec
    from mobexport.converters.pipeline import build_zoo_model
    from mobexport.exporter.passes.reparameterize import reparameterize

    spec = get_spec(model_name)
    rss = PeakRSS()
    rss.reset()
    t0 = time.perf_counter_ns()
    # the same weights as `mobexport <format> MODEL` exports: the checkpoint, or the seed's random weights
    model, tag = build_zoo_model(spec.name, weights=weights, seed=seed if bn_seed is None else bn_seed)
    model = reparameterize(model).eval()
    load_ms = (time.perf_counter_ns() - t0) / 1e6
    x = np.random.default_rng(0).standard_normal((cfg.batch, *spec.input_size), dtype=np.float32)
    with torch_threads(cfg.threads):
        return _timed(TorchRunner(model, cfg.threads), x, cfg, rss, dict(
            model=spec.name, weights=tag, target="torch-fp32", artifact_sha256=state_dict_sha256(model),
            threads=cfg.threads or torch.get_num_threads(), load_ms=load_ms, validation_status=Status.OK.value,
            tool_versions=tool_versions(), git_commit=_git_commit({})), f"torch:{spec.name}")


# ---------------------------------------------------------------- many artifacts → store / server

def run_benchmarks(artifacts: list[str], cfg: BenchConfig, *, torch_models: list[str] = (), store=None,
                   post_url: str | None = None, token: str | None = None,
                   progress: Callable[[str], None] | None = None) -> list[BenchOutcome]:
    """Bench every artifact (then every ``torch_models`` baseline) with a cool-down between them; store each
    result (``store.add``) and post it to a mobexport server when asked."""
    cfg.check()
    found = [a for p in artifacts for a in find_artifacts(p)]
    jobs: list[tuple[str, Callable[[], BenchOutcome]]] = [
        (f"{a.manifest.get('model')}/{a.target}", lambda a=a: bench_artifact(a, cfg)) for a in found]
    jobs += [(f"{m}/torch-fp32", lambda m=m: bench_torch(m, cfg)) for m in torch_models]
    outcomes = []
    for i, (label, job) in enumerate(jobs):
        if i and cfg.cooldown_s:
            time.sleep(cfg.cooldown_s)
        if progress:
            progress(f"[{i + 1}/{len(jobs)}] {label}: {cfg.runs} runs after {cfg.warmup} warm-up")
        out = job()
        if out.result is not None and store is not None:
            out.id = store.add(out.result)
        if out.result is not None and post_url:
            from mobexport.benchmarks.server import post_result

            out.extra["posted_id"] = post_result(post_url, out.result.to_dict(), token=token)
        outcomes.append(out)
    return outcomes
