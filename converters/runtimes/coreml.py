"""Core ML through coremltools (macOS only): ``MLModel.predict`` with the compute units recorded in the
package (``options={"compute_units": ...}`` overrides). Core ML schedules its own threads."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from ..base import Availability, Runner
from . import Runtime, register_runtime


class CoreMLRunner(Runner):
    """macOS only: ``MLModel.predict`` with the compute units recorded in the package."""

    runtime = "coremltools"

    def __init__(self, path: Path, compute_units: str | None = None):
        import coremltools as ct

        from ..coreml import META_PREFIX

        meta = ct.models.MLModel(str(path), skip_model_load=True).user_defined_metadata
        self.compute_unit = compute_units or meta.get(f"{META_PREFIX}compute_units", "ALL")
        self.model = ct.models.MLModel(str(path), compute_units=ct.ComputeUnit[self.compute_unit])
        self.runtime_version = ct.__version__
        self.image = json.loads(meta.get(f"{META_PREFIX}image_input", "false"))
        self.pp = json.loads(meta.get(f"{META_PREFIX}preprocessing", "{}"))
        self._y: dict[str, Any] = {}

    def native_input(self, x: np.ndarray):
        if not self.image:
            return super().native_input(x)
        from PIL import Image

        mean = np.asarray(self.pp["mean"], np.float32).reshape(-1, 1, 1)
        std = np.asarray(self.pp["std"], np.float32).reshape(-1, 1, 1)
        pix = np.clip((x[0] * std + mean) * 255.0 + 0.5, 0, 255).astype(np.uint8)
        if self.pp.get("color") == "BGR":  # Core ML's BGR ImageType swaps a (RGB) PIL image itself
            pix = pix[::-1]
        return Image.fromarray(np.ascontiguousarray(pix.transpose(1, 2, 0)), "RGB")

    def invoke(self) -> None:
        self._y = self.model.predict({"input": self._x})

    def get_output(self) -> np.ndarray:
        return np.asarray(self._y["logits"])


@register_runtime
class CoreMLTools(Runtime):
    name = "coremltools"
    formats = ("coreml",)
    rank = 10
    packages = ("coremltools",)
    extra = "coreml"

    def available(self) -> Availability:
        if sys.platform != "darwin":
            return Availability(False, f"Core ML runs only on macOS (this host: {sys.platform}; coremltools "
                                       "has no Linux runtime)", "validate on a Mac or with the iOS app")
        return Availability.check_modules(["coremltools.libcoremlpython"], "coreml")

    def load(self, artifact_path, manifest: dict[str, Any] | None = None, threads: int | None = None,
             options: dict[str, Any] | None = None) -> Runner:
        opts = self.take_options(options, compute_units=None)
        return CoreMLRunner(Path(artifact_path), compute_units=opts["compute_units"])
