"""onnxruntime, CPU execution provider: runs ``onnx`` artifacts and the ONNX a TensorRT engine is built from
(fp16 and Q/DQ int8). Options: ``graph_optimization`` (``all`` default, ``basic``, ``extended``, ``disabled``),
``profile`` (a folder: onnxruntime's per-node profiler writes its JSON there)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..base import Runner
from . import Runtime, register_runtime

GRAPH_LEVELS = {"disabled": "ORT_DISABLE_ALL", "basic": "ORT_ENABLE_BASIC", "extended": "ORT_ENABLE_EXTENDED",
                "all": "ORT_ENABLE_ALL"}


class OnnxRunner(Runner):
    runtime = "onnxruntime"

    def __init__(self, path: Path, num_threads: int = 1, graph_optimization: str = "all",
                 profile_dir: str | None = None):
        import onnxruntime as ort

        self.threads = num_threads
        so = ort.SessionOptions()
        so.intra_op_num_threads = num_threads
        so.inter_op_num_threads = 1
        so.graph_optimization_level = getattr(ort.GraphOptimizationLevel, GRAPH_LEVELS[graph_optimization])
        if profile_dir:
            so.enable_profiling = True
            so.profile_file_prefix = str(Path(profile_dir) / "ort_profile")
        self.session = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        self.runtime_version = ort.__version__
        self.input_name = self.session.get_inputs()[0].name
        self._y: list[np.ndarray] = []
        self.profile_file: str | None = None

    def invoke(self) -> None:
        self._y = self.session.run(None, {self.input_name: self._x})

    def get_output(self) -> np.ndarray:
        return self._y[0]

    def close(self) -> None:
        if self.session.get_session_options().enable_profiling and self.profile_file is None:
            self.profile_file = self.session.end_profiling()


@register_runtime
class OnnxRuntimeCPU(Runtime):
    name = "onnxruntime"
    formats = ("onnx", "tensorrt")
    rank = 10
    packages = ("onnxruntime",)
    modules = ("onnxruntime",)
    extra = "onnx"

    def load(self, artifact_path, manifest: dict[str, Any] | None = None, threads: int | None = None,
             options: dict[str, Any] | None = None) -> Runner:
        opts = self.take_options(options, graph_optimization="all", profile=None)
        if opts["graph_optimization"] not in GRAPH_LEVELS:
            raise ValueError(f"onnxruntime graph_optimization: one of {sorted(GRAPH_LEVELS)}, got "
                             f"{opts['graph_optimization']!r}")
        return OnnxRunner(Path(artifact_path), num_threads=threads or 1,
                          graph_optimization=opts["graph_optimization"], profile_dir=opts["profile"])

    def profile_options(self, folder: str) -> dict[str, Any] | None:
        return {"profile": folder}

    def read_profile(self, runner: Runner) -> list[dict[str, Any]]:
        """onnxruntime's profiler trace (``enable_profiling``): the kernel time of every node, per run."""
        import json

        per: dict[str, dict[str, Any]] = {}
        for ev in json.loads(Path(runner.profile_file).read_text()):
            if ev.get("cat") != "Node" or not str(ev.get("name", "")).endswith("_kernel_time"):
                continue
            args = ev.get("args", {})
            row = per.setdefault(ev["name"].removesuffix("_kernel_time"), {
                "op": args.get("op_name", "?"), "index": int(args.get("node_index", 0)), "us": [],
                "output_shape": [next(iter(t.values())) for t in args.get("output_type_shape", [])]})
            row["us"].append(float(ev.get("dur", 0)))
        return [{"layer": name, "op": r["op"], "runs": len(r["us"]), "min_us": min(r["us"]),
                 "mean_us": sum(r["us"]) / len(r["us"]), "output_shape": r["output_shape"]}
                for name, r in sorted(per.items(), key=lambda kv: kv[1]["index"])]
