"""PyTorch eager (the ``torch-fp32`` baseline): the deploy (re-parameterized) form of a zoo model, rebuilt
from a manifest-like dict ``{"model", "weights", "seed"}`` — the same weights ``mobexport <format> MODEL``
exports. Runs in the benchmark worker like any other runtime (that worker imports torch; the others do not)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..base import Runner
from . import Runtime, register_runtime


class TorchRunner(Runner):
    runtime = "torch"
    compute_unit = "cpu"

    def __init__(self, model, threads: int | None = None):
        import torch

        self.model, self.threads = model.eval(), threads
        self.runtime_version = torch.__version__
        self._x = self._y = None

    def set_input(self, x: np.ndarray) -> None:
        import torch

        self._x = torch.from_numpy(x)

    def invoke(self) -> None:
        import torch

        with torch.inference_mode():
            self._y = self.model(self._x)

    def get_output(self) -> np.ndarray:
        return self._y.numpy()


@register_runtime
class TorchEager(Runtime):
    name = "torch"
    formats = ("torch",)
    rank = 10
    packages = ("torch",)
    modules = ("torch",)

    def load(self, artifact_path, manifest: dict[str, Any] | None = None, threads: int | None = None,
             options: dict[str, Any] | None = None) -> Runner:
        """``artifact_path`` is ignored (the model is rebuilt); ``manifest``: model, weights (path or None), seed."""
        import torch

        from mobexport.exporter.passes.reparameterize import reparameterize
        from mobexport.exporter.source import state_dict_sha256

        from ..pipeline import build_zoo_model

        self.take_options(options)
        m = dict(manifest or {})
        if threads:
            torch.set_num_threads(threads)
        model, tag = build_zoo_model(m["model"], weights=m.get("weights"), seed=m.get("seed", 0))
        model = reparameterize(model).eval()
        runner = TorchRunner(model, threads or torch.get_num_threads())
        runner.weights_tag, runner.artifact_sha256 = tag, state_dict_sha256(model)
        return runner
