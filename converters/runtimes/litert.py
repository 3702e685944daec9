"""LiteRT (``ai-edge-litert``) Interpreter with its default XNNPACK delegate: runs ``tflite`` artifacts.

No per-layer profile: the Python ``Interpreter`` of ai-edge-litert (2.3.0 checked) has no op-profiling option
or method — its native wrapper exposes tensors, ``AllocateTensors`` and ``Invoke`` only, and
``experimental_force_delegate_node_profiling`` concerns a C++ profiler that Python cannot attach or read.
Per-op times of a .tflite come from LiteRT's ``benchmark_model`` tool (``--enable_op_profiling``) on the
device; ``profile_note`` says so in the record, and ``read_profile`` refuses with the same words."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..base import Runner
from . import Runtime, register_runtime


class TFLiteRunner(Runner):
    runtime = "ai-edge-litert"

    def __init__(self, path: Path, num_threads: int = 1, layout: str | None = None):
        self.threads = num_threads
        from importlib.metadata import version

        from ai_edge_litert.interpreter import Interpreter

        self.interpreter = Interpreter(model_path=str(path), num_threads=num_threads)
        self.interpreter.allocate_tensors()
        self.runtime_version = version("ai-edge-litert")
        self.compute_unit = "cpu (XNNPACK)"
        self.inp = self.interpreter.get_input_details()[0]
        self.out = self.interpreter.get_output_details()[0]
        # the manifest's layout where it has one, else a guess from the shape (a 3-channel image's C position)
        self.nhwc = layout.upper() == "NHWC" if layout else (
            len(self.inp["shape"]) == 4 and self.inp["shape"][-1] in (1, 3) and self.inp["shape"][1] not in (1, 3))

    def native_input(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32)
        if self.nhwc:
            x = x.transpose(0, 2, 3, 1)
        dtype = self.inp["dtype"]
        if dtype != np.float32:
            scale, zp = self.inp["quantization"]
            info = np.iinfo(dtype)
            x = np.clip(np.round(x / scale) + zp, info.min, info.max)
        return np.ascontiguousarray(x, dtype=dtype)

    def set_input(self, x: np.ndarray) -> None:
        self.interpreter.set_tensor(self.inp["index"], x)

    def invoke(self) -> None:
        self.interpreter.invoke()

    def get_output(self) -> np.ndarray:
        return self.interpreter.get_tensor(self.out["index"])

    def float_output(self, y: np.ndarray) -> np.ndarray:
        if self.out["dtype"] != np.float32:
            scale, zp = self.out["quantization"]
            return ((y.astype(np.float32) - zp) * scale).astype(np.float32)
        return np.asarray(y, dtype=np.float32)


@register_runtime
class LiteRT(Runtime):
    name = "ai-edge-litert"
    formats = ("tflite",)
    rank = 10
    packages = ("ai-edge-litert",)
    modules = ("ai_edge_litert.interpreter",)
    extra = "tflite"

    def profile_note(self) -> str:
        return (f"{self.name} offers no per-layer profiler: its Python Interpreter ({self.version()}) has no "
                "op-profiling option or method; use LiteRT's benchmark_model --enable_op_profiling on the device")

    def load(self, artifact_path, manifest: dict[str, Any] | None = None, threads: int | None = None,
             options: dict[str, Any] | None = None) -> Runner:
        self.take_options(options)
        m = manifest or {}
        layout = (m.get("input") or (m.get("inputs") or [{}])[0]).get("layout")
        return TFLiteRunner(Path(artifact_path), num_threads=threads or 1, layout=layout)
