"""Per-block latency lookup table (MoGA paper, §3.2): time every distinct block alone on a runtime, predict
a model's latency as the sum over its blocks.

Blocks: the model's direct children in execution order, with every ``nn.Sequential``/``nn.ModuleList``
expanded recursively (stem, each block of each stage, head layers). Two blocks are the same table entry when
their module structure (``repr`` with all hyper-parameters) and input shape are equal. Ops issued by the
model's own ``forward`` outside any child (a functional global pool, a flatten) are not in the table; they
are cheap, and the residual shows up in the accuracy figures.

A table is built for one runtime of the registry (``converters/runtimes``) and one target a user deploys
(``--target``, default the runtime's first format with its converter's default scheme: onnx-fp32 on
onnxruntime, tflite-fp32 on ai-edge-litert). Each block of the deploy model (re-parameterized, BatchNorm
folded, the seed-0 weights ``mobexport <format> NAME`` exports) is converted alone by that target's registered
converter — ``Converter.convert``, the code a user's export runs, dependencies first (tensorrt-* from
onnx-fp32); int8 targets are calibrated on the block's real inputs for 8 photos — then timed as ``bench`` times
an artifact (``harness.time_file``: the chosen runtime, a fresh worker per block unless in-process, the one
timing loop of ``benchmarks/worker.py``). ``predict`` needs no runtime at all.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

_CONTAINERS = ("Sequential", "ModuleList")
BLOCKS_FROM = "the target's converter (mobexport.converters), timed by harness.time_file"


@dataclass
class BlockRef:
    name: str
    module: object  # nn.Module
    input_shape: tuple[int, ...]

    @property
    def key(self) -> str:
        text = f"{type(self.module).__name__}|{self.module!r}|{self.input_shape}"
        return hashlib.sha1(text.encode()).hexdigest()[:16]


@dataclass
class Entry:
    key: str
    block_type: str
    input_shape: list[int]
    min_ms: float
    p50_ms: float
    runs: int
    example: str  # "<model>:<block name>" where it was first seen


@dataclass
class LatencyTable:
    runtime: str
    runtime_version: str
    threads: int
    device: dict = field(default_factory=dict)
    created: str = ""
    entries: dict[str, Entry] = field(default_factory=dict)
    target: str = "onnx-fp32"  # the target every block was converted to
    blocks_from: str = ""  # how the blocks were made; "" in tables from before the converters made them

    def to_dict(self) -> dict:
        d = asdict(self)
        d["entries"] = [asdict(e) for e in self.entries.values()]
        return d

    def save(self, path: str | os.PathLike) -> None:
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=1))
        tmp.replace(path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> LatencyTable:
        from mobexport.exporter.errors import UsageError

        try:
            d = json.loads(Path(path).read_text())
            entries = {e["key"]: Entry(**e) for e in d.pop("entries")}
            return cls(**d, entries=entries)
        except FileNotFoundError:
            raise UsageError(f"lookup table not found: {path}") from None
        except (ValueError, KeyError, TypeError) as e:
            raise UsageError(f"{path} is not a mobexport lookup table: {e}") from None


def decompose(model, input_size) -> list[BlockRef]:
    """The model's blocks in execution order with their input shapes (one forward pass)."""
    import torch

    candidates: dict[object, str] = {}

    def collect(mod, prefix):
        for name, child in mod.named_children():
            full = f"{prefix}.{name}" if prefix else name
            if type(child).__name__ in _CONTAINERS:
                collect(child, full)
            else:
                candidates[child] = full

    collect(model, "")
    seen: list[BlockRef] = []

    def hook(mod, args):
        if args and isinstance(args[0], torch.Tensor) and len(args) == 1:
            seen.append(BlockRef(candidates[mod], mod, tuple(args[0].shape)))

    handles = [m.register_forward_pre_hook(hook) for m in candidates]
    try:
        with torch.no_grad():
            model.eval()(torch.randn(1, *input_size))
    finally:
        for h in handles:
            h.remove()
    return seen


# ---------------------------------------------------------------- runtime and target

def resolve(runtime: str = "onnxruntime", target: str | None = None):
    """(Runtime, Target) a table is built for: ``runtime`` from the registry (did-you-mean when unknown),
    ``target`` a registered target id of a format that runtime runs (default: the converter's default scheme
    of the runtime's first format, e.g. onnx-fp32 for onnxruntime, tflite-fp32 for ai-edge-litert)."""
    from mobexport.converters import get_converter, resolve_target
    from mobexport.converters.runtimes import choose, get_runtime
    from mobexport.exporter.errors import UsageError

    rt = get_runtime(runtime)
    if target is None:
        fmt = rt.formats[0]
        target = f"{fmt}-{get_converter(fmt).default_scheme}"
    t = resolve_target(target)
    choose(t.format, rt.name)  # UsageError: the runtime does not run that target's format
    for what, avail in ((f"runtime {rt.name}", rt.available()), (f"target {t.id}", get_converter(t.format).is_available())):
        if not avail.ok:
            raise UsageError(f"{what} unavailable here: {avail.reason}" + (f" ({avail.install_hint})"
                                                                            if avail.install_hint else ""))
    return rt, t


# ---------------------------------------------------------------- one block: convert, then time

def block_spec(spec, ref: BlockRef, calibration: list):
    """The block's own spec: its input shape, and a preprocessing whose normalised range is the range its
    calibration inputs span (what an int8 converter pins the input's quantization to)."""
    import dataclasses

    import numpy as np

    lo, hi = (float(min(np.min(c) for c in calibration)), float(max(np.max(c) for c in calibration))) \
        if calibration else (-1.0, 1.0)
    hi = max(hi, lo + 1e-6)
    pp = dataclasses.replace(spec.preprocessing, mean=(-lo / (hi - lo),) * 3, std=(1 / (hi - lo),) * 3)
    return dataclasses.replace(spec, name=f"block_{ref.key}", input_size=tuple(ref.input_shape[1:]),
                               preprocessing=pp)


def convert_block(ref: BlockRef, target, spec, folder: Path, calibration: list | None = None) -> Path:
    """``ref.module`` converted alone by the target's registered converter (``Converter.convert``: the code a
    user's export of that target runs, default options), with the targets it depends on converted first; the
    artifact's path in ``folder``. ``calibration``: the block's real inputs (int8 targets)."""
    import dataclasses

    import torch

    from mobexport.converters import get_converter, resolve_target
    from mobexport.converters.base import Artifact, ExportState, parse_options

    calibration = calibration or []
    deps = {d: Artifact(d, convert_block(ref, resolve_target(d), spec, folder, calibration))
            for d in target.depends_on}
    conv = get_converter(target.format)
    general, own = parse_options(conv, target, {})
    x = torch.from_numpy(calibration[0]) if calibration else torch.randn(*ref.input_shape,
                                                                          generator=torch.Generator().manual_seed(0))
    state = ExportState(model_name=f"block_{ref.key}", target=target, spec=block_spec(spec, ref, calibration),
                        model=ref.module.eval(), example_input=x, calibration=calibration, workdir=folder,
                        options={**dataclasses.asdict(general), **dataclasses.asdict(own)}, dependencies=deps)
    with torch.no_grad():
        return Path(conv.convert(state, folder / f"{ref.key}.{target.id}{conv.extension}"))


def time_block(path: Path, target, input_shape, cfg) -> tuple[float, float]:
    """(min_ms, p50_ms) of the block's artifact, timed as ``bench`` times one (``harness.time_file``: the
    runtime of ``cfg``, the worker's loop); RuntimeError with the worker's reason when it failed."""
    import numpy as np

    from mobexport.benchmarks.harness import time_file

    x = np.random.default_rng(0).standard_normal(tuple(input_shape)).astype(np.float32)
    manifest = {"inputs": [{"name": "input", "shape": list(input_shape), "dtype": "float32", "layout": "NCHW"}]}
    out = time_file(path, target.format, manifest, x, cfg)
    if "error" in out:
        raise RuntimeError(f"{out['error']}: {out['reason']}")
    return float(min(out["samples"])), float(np.median(out["samples"]))


def block_inputs(model, spec, refs: list[BlockRef], calibration_dir=None, n: int = 8) -> dict[str, list]:
    """By key: the real inputs each of ``refs`` (modules of ``model``, or ``model`` itself) receives when ``n``
    calibration photos (``--calibration DIR`` or ``make assets``) run through ``model``."""
    import torch

    from mobexport.quantization.calibration import image_sets

    photos = image_sets(spec, calibration_dir).calibration[:n]
    seen: dict[str, list] = {r.key: [] for r in refs}
    handles = [r.module.register_forward_pre_hook(
        lambda m, args, key=r.key: seen[key].append(args[0].detach().numpy().copy())) for r in refs]
    try:
        with torch.no_grad():
            for x in photos:
                model(torch.from_numpy(x))
    finally:
        for h in handles:
            h.remove()
    return {k: v[:n] for k, v in seen.items()}


# ---------------------------------------------------------------- the table

def build(models: list[str], runtime: str = "onnxruntime", out: str | os.PathLike | None = None,
          runs: int = 200, warmup: int = 10, threads: int = 1, target: str | None = None,
          in_process: bool = False, calibration_dir=None, progress=None) -> LatencyTable:
    """Time every distinct block of ``models`` converted to ``target`` on ``runtime`` (merging into an
    existing table at ``out``, which must have been built for the same runtime, target and threads)."""
    from mobexport.benchmarks.harness import BenchConfig
    from mobexport.exporter.errors import UsageError

    rt, t = resolve(runtime, target)
    cfg = BenchConfig(runs=runs, warmup=warmup, threads=threads, runtime=rt.name, in_process=in_process)
    cfg.check()
    table = LatencyTable.load(out) if out and Path(out).exists() else LatencyTable(
        rt.name, rt.version(), threads, device=_device(), created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        target=t.id, blocks_from=BLOCKS_FROM)
    if (table.runtime, table.threads, table.target) != (rt.name, threads, t.id):
        raise UsageError(f"{out} was built for {table.target} on {table.runtime} with {table.threads} threads; "
                         "use another file")
    if table.blocks_from != BLOCKS_FROM:
        how = table.blocks_from or "exported to ONNX by the builder's own exporter, not the target's converter"
        raise UsageError(f"{out} holds blocks made another way ({how}); use another file")
    with tempfile.TemporaryDirectory() as tmp:
        for name in models:
            _add_model(table, name, t, cfg, Path(tmp), calibration_dir, progress)
            if out:
                table.save(out)
    return table


def _add_model(table: LatencyTable, name: str, target, cfg, folder: Path, calibration_dir, progress) -> None:
    import shutil

    spec, model = _deploy_model(name)
    refs: dict[str, BlockRef] = {}
    for r in decompose(model, spec.input_size):
        if r.key not in table.entries:
            refs.setdefault(r.key, r)
    if not refs:
        return
    calib = block_inputs(model, spec, list(refs.values()), calibration_dir) if target.needs_calibration else {}
    _fold(model)  # in place: the blocks' modules are folded as a user's export folds them
    for i, (key, ref) in enumerate(refs.items()):
        if progress:
            progress(f"{spec.name}: block {i + 1}/{len(refs)} {ref.name} → {target.id}")
        work = Path(tempfile.mkdtemp(dir=folder))
        try:
            mn, p50 = time_block(convert_block(ref, target, spec, work, calib.get(key)), target, ref.input_shape, cfg)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        table.entries[key] = Entry(key, type(ref.module).__name__, list(ref.input_shape), mn, p50, cfg.runs,
                                   f"{spec.name}:{ref.name}")


def _deploy_model(name: str):
    """(spec, deploy form) of the weights ``mobexport <format> NAME`` exports without ``--weights``."""
    import mobexport
    from mobexport.converters.pipeline import build_zoo_model

    spec = mobexport.get_spec(name)
    return spec, mobexport.reparameterize(build_zoo_model(spec.name, seed=0)[0]).eval()


def _fold(model) -> None:
    from mobexport.exporter.passes.fold_batchnorm import fold_batchnorm

    fold_batchnorm(model)


def time_model(name: str, runtime: str = "onnxruntime", target: str | None = None, runs: int = 200,
               warmup: int = 10, threads: int = 1, in_process: bool = False) -> tuple[float, float]:
    """(min_ms, p50_ms) of a whole zoo model converted and timed exactly as its blocks are (what a table's
    prediction is compared with: scripts/bench_predictors.py)."""
    from mobexport.benchmarks.harness import BenchConfig

    rt, t = resolve(runtime, target)
    spec, model = _deploy_model(name)
    ref = BlockRef(spec.name, model, (1, *spec.input_size))
    calib = block_inputs(model, spec, [ref]) if t.needs_calibration else {}
    _fold(model)
    cfg = BenchConfig(runs=runs, warmup=warmup, threads=threads, runtime=rt.name, in_process=in_process)
    with tempfile.TemporaryDirectory() as tmp:
        return time_block(convert_block(ref, t, spec, Path(tmp), calib.get(ref.key)), t, ref.input_shape, cfg)


def predict(name: str, table: LatencyTable) -> dict:
    spec, model = _deploy_model(name)
    blocks = decompose(model, spec.input_size)
    per_block, missing = [], []
    for ref in blocks:
        e = table.entries.get(ref.key)
        if e is None:
            missing.append(ref.name)
        per_block.append({"block": ref.name, "type": type(ref.module).__name__, "key": ref.key,
                          "ms": None if e is None else e.min_ms})
    total = sum(b["ms"] for b in per_block if b["ms"] is not None)
    return {"model": spec.name, "runtime": table.runtime, "predicted_ms": total, "blocks": len(blocks),
            "missing": len(missing), "missing_blocks": missing, "per_block": per_block}


def _device() -> dict:
    import platform

    return {"machine": platform.machine(), "node": platform.node(), "os": platform.platform(),
            "cpus": os.cpu_count()}


def store_table(table: LatencyTable, db_url: str | None) -> None:
    """Store the table with its provenance in the results database (table ``lookup_tables``)."""
    from mobexport.benchmarks.store import open_store

    open_store(db_url).add_lookup_table(table.to_dict())
