"""Per-block latency lookup table (MoGA paper, §3.2): time every distinct block alone on a runtime, predict
a model's latency as the sum over its blocks.

Blocks: the model's direct children in execution order, with every ``nn.Sequential``/``nn.ModuleList``
expanded recursively (stem, each block of each stage, head layers). Two blocks are the same table entry when
their module structure (``repr`` with all hyper-parameters) and input shape are equal. Ops issued by the
model's own ``forward`` outside any child (a functional global pool, a flatten) are not in the table; they
are cheap, and the residual shows up in the accuracy figures.

Each block is exported alone to ONNX (TorchScript exporter: 0.3 s vs 1–4 s per export for the dynamo one,
same ORT graph for these ops), loaded by a registered runtime of the onnx format (``converters/runtimes``) and
timed with the harness's own loop (``benchmarks/worker.py``: warm-up, then min of N round trips). ``predict`` needs no runtime at all.
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


def _deploy(name: str):
    import mobexport

    spec = mobexport.get_spec(name)
    return spec, mobexport.reparameterize(mobexport.create_model(spec.name))


def export_onnx(module, input_shape, path: Path) -> None:
    import torch

    module.eval()
    with torch.no_grad():
        torch.onnx.export(module, (torch.randn(*input_shape),), str(path), dynamo=False, opset_version=17,
                          input_names=["input"], output_names=["output"])


def time_onnx(path: Path, input_shape, runs: int, warmup: int, threads: int,
              runtime: str = "onnxruntime") -> tuple[float, float]:
    """(min_ms, p50_ms) of ``runs`` round trips after ``warmup``: the block loaded by a registered runtime of the
    onnx format (``converters/runtimes``) and timed with the harness's own loop (``benchmarks/worker.py``)."""
    import numpy as np

    from mobexport.benchmarks.worker import time_round_trips, warm_up
    from mobexport.converters.runtimes import choose

    runner = choose("onnx", runtime).load(path, {}, threads)
    try:
        x = runner.native_input(np.random.default_rng(0).standard_normal(input_shape).astype(np.float32))
        warm_up(runner, x, max(0, warmup - 1))
        samples = time_round_trips(runner, x, runs)
    finally:
        runner.close()
    return float(min(samples)), float(np.median(samples))


def build(models: list[str], runtime: str = "onnxruntime", out: str | os.PathLike | None = None,
          runs: int = 200, warmup: int = 10, threads: int = 1) -> LatencyTable:
    """Time every distinct block of ``models`` (merging into an existing table at ``out``)."""
    from mobexport.converters.runtimes import choose
    from mobexport.exporter.errors import MobexportError, UsageError

    try:
        rt = choose("onnx", runtime)  # the blocks are ONNX: a runtime of that format (device tables: the apps)
    except MobexportError as e:
        raise UsageError(f"lut build times ONNX blocks on this host: {e}; device tables come from the apps") from None
    if not (avail := rt.available()).ok:
        raise UsageError(f"runtime {runtime} unavailable: {avail.reason} ({avail.install_hint})")
    table = LatencyTable.load(out) if out and Path(out).exists() else LatencyTable(
        runtime, rt.version(), threads, device=_device(), created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    if table.runtime != runtime or table.threads != threads:
        raise UsageError(f"{out} was built for {table.runtime} with {table.threads} threads; use another file")
    with tempfile.TemporaryDirectory() as tmp:
        for name in models:
            spec, model = _deploy(name)
            for ref in decompose(model, spec.input_size):
                if ref.key in table.entries:
                    continue
                path = Path(tmp) / f"{ref.key}.onnx"
                export_onnx(ref.module, ref.input_shape, path)
                mn, p50 = time_onnx(path, ref.input_shape, runs, warmup, threads, runtime)
                table.entries[ref.key] = Entry(ref.key, type(ref.module).__name__, list(ref.input_shape), mn, p50,
                                               runs, f"{spec.name}:{ref.name}")
            if out:
                table.save(out)
    return table


def predict(name: str, table: LatencyTable) -> dict:
    spec, model = _deploy(name)
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
