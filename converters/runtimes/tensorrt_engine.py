"""TensorRT (NVIDIA GPUs): runs ``tensorrt`` artifacts as engines. The artifact of a tensorrt-* target is the ONNX
an engine is built from; this runtime loads the engine the converter built beside it (``<artifact>.engine``,
or ``options={"engine": PATH}``) and builds one from the ONNX at load when there is none. Device buffers come
from torch's CUDA runtime; a round trip is the host → device copy, ``execute_async_v3`` on the current stream,
and the device → host copy (which waits for it) — timed by the one loop of ``benchmarks/worker.py`` like every
runtime (wall time of the round trip, not CUDA events: the same protocol as the CPU runtimes).

Where ``import tensorrt`` fails or no CUDA GPU is usable, ``available()`` says so with the install hint: bench
lists such artifacts as SKIPPED, the converter's engine entry is UNVALIDATED_NO_RUNTIME, and ``load`` raises
with the same reason. onnxruntime stays the format's default runtime (it runs the engine's ONNX on any host).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..base import Availability, Runner
from . import Runtime, register_runtime

INSTALL_HINT = "pip install tensorrt-cu12 (NVIDIA's index) and a CUDA build of torch, on a machine with an NVIDIA GPU"


def _torch_dtype(trt_dtype):
    import tensorrt as trt
    import torch

    table = {trt.DataType.FLOAT: torch.float32, trt.DataType.HALF: torch.float16, trt.DataType.INT8: torch.int8,
             trt.DataType.INT32: torch.int32, trt.DataType.BOOL: torch.bool}
    return table[trt_dtype]


class TensorRTRunner(Runner):
    runtime = "tensorrt"
    compute_unit = "cuda"

    def __init__(self, engine_bytes: bytes):
        import tensorrt as trt
        import torch

        self.runtime_version = trt.__version__
        self.compute_unit = f"cuda ({torch.cuda.get_device_name()})"
        self.engine = trt.Runtime(trt.Logger(trt.Logger.WARNING)).deserialize_cuda_engine(engine_bytes)
        if self.engine is None:
            raise RuntimeError("TensorRT could not deserialize the engine (built by another TensorRT version or "
                               "for another GPU? delete the .engine to rebuild it from the ONNX)")
        self.ctx = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.inputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self.outputs = [n for n in names if n not in self.inputs]
        if len(self.inputs) != 1 or not self.outputs:
            raise RuntimeError(f"engine has inputs {self.inputs} and outputs {self.outputs}; one input expected")
        self.buf: dict[str, Any] = {}
        self._shape: tuple[int, ...] | None = None

    def _allocate(self, shape: tuple[int, ...]) -> None:
        """Device buffers for an input of ``shape`` (again only when the shape changes: dynamic batch)."""
        import torch

        if shape == self._shape:
            return
        self.ctx.set_input_shape(self.inputs[0], shape)
        for name in (*self.inputs, *self.outputs):
            dims = tuple(self.ctx.get_tensor_shape(name))
            self.buf[name] = torch.empty(dims, dtype=_torch_dtype(self.engine.get_tensor_dtype(name)), device="cuda")
            self.ctx.set_tensor_address(name, self.buf[name].data_ptr())
        self._shape = shape

    def native_input(self, x: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(x, dtype=np.float32)
        self._allocate(tuple(x.shape))
        return x

    def set_input(self, x: np.ndarray) -> None:
        import torch

        self.buf[self.inputs[0]].copy_(torch.from_numpy(x))

    def invoke(self) -> None:
        import torch

        if not self.ctx.execute_async_v3(torch.cuda.current_stream().cuda_stream):
            raise RuntimeError("TensorRT execute_async_v3 failed")

    def get_output(self) -> np.ndarray:
        return self.buf[self.outputs[0]].float().cpu().numpy()  # the copy waits for the stream


@register_runtime
class TensorRT(Runtime):
    name = "tensorrt"
    formats = ("tensorrt",)
    rank = 20  # after onnxruntime: the engine's ONNX is validated on any host, the engine only on a CUDA GPU
    packages = ("tensorrt", "tensorrt-cu12", "tensorrt_cu12")

    def available(self) -> Availability:
        """``import tensorrt``, a TensorRT builder (it needs a CUDA GPU) and torch's CUDA runtime."""
        try:
            import tensorrt as trt
        except Exception as e:  # ImportError or a missing native library
            return Availability(False, f"TensorRT is not installed (import tensorrt: {type(e).__name__}: {e})",
                                INSTALL_HINT)
        try:
            if trt.Builder(trt.Logger(trt.Logger.ERROR)) is None:
                raise RuntimeError("trt.Builder could not be created")
        except Exception as e:  # no GPU / driver
            return Availability(False, f"no CUDA GPU usable by TensorRT {trt.__version__}: {e}", INSTALL_HINT)
        try:
            import torch

            if not torch.cuda.is_available():
                raise RuntimeError(f"torch {torch.__version__} has no CUDA device")
        except Exception as e:
            return Availability(False, f"TensorRT {trt.__version__} needs torch with CUDA for its device "
                                       f"buffers: {e}", INSTALL_HINT)
        return Availability(True)

    def load(self, artifact_path, manifest: dict[str, Any] | None = None, threads: int | None = None,
             options: dict[str, Any] | None = None) -> Runner:
        """The engine beside the artifact (or ``engine``), else one built from the artifact's ONNX now."""
        opts = self.take_options(options, engine=None, workspace_mb=1024)
        avail = self.available()
        if not avail.ok:
            raise RuntimeError(f"{avail.reason} ({avail.install_hint})")
        path = Path(artifact_path)
        engine = Path(opts["engine"]) if opts["engine"] else (
            path if path.suffix == ".engine" else path.with_suffix(".engine"))
        if engine.is_file():
            return TensorRTRunner(engine.read_bytes())
        from ..tensorrt import serialize_engine

        return TensorRTRunner(serialize_engine(path, {"workspace_mb": opts["workspace_mb"]}))
