"""The converter contract: Target, Availability, Artifact, Runner, Converter, ExportState.

One module per format (onnx.py, tflite.py, coreml.py, tensorrt.py) implements ``Converter``. Backends are
imported inside functions only. A format that builds on another declares it in ``Target.depends_on``; the
pipeline runs that target first and hands its artifact over in ``state.dependencies`` — converters never
call each other.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mobexport.exporter.status import Status

FORMATS = ("onnx", "tflite", "coreml", "tensorrt")


@dataclass(frozen=True)
class Target:
    id: str  # "<format>-<scheme>", e.g. "tflite-w8a8"
    format: str
    scheme: str  # fp32 | fp16 | w8a8 | w8
    description: str = ""
    depends_on: tuple[str, ...] = ()  # target ids whose artifacts this one is built from

    @property
    def precision(self) -> str:
        return {"fp32": "fp32", "fp16": "fp16", "w8a8": "int8", "w8": "w8"}[self.scheme]

    @property
    def needs_calibration(self) -> bool:
        return self.scheme == "w8a8"


@dataclass(frozen=True)
class Availability:
    ok: bool
    reason: str = ""
    install_hint: str = ""

    @classmethod
    def check_modules(cls, modules: list[str], extra: str) -> Availability:
        """ok if every module imports; otherwise the first failure and ``pip install 'mobexport[extra]'``."""
        import importlib

        for m in modules:
            try:
                importlib.import_module(m)
            except Exception as e:  # ImportError, or a broken native library
                return cls(False, f"cannot import {m}: {type(e).__name__}: {e}",
                           f"pip install 'mobexport[{extra}]'")
        return cls(True)


@dataclass
class Artifact:
    target: str
    path: Path  # the artifact file or bundle (e.g. .mlpackage directory)
    manifest_path: Path | None = None
    manifest: dict[str, Any] = field(default_factory=dict)

    @property
    def model(self) -> str:
        return self.manifest.get("model", "")


class Runner(ABC):
    """Runs one artifact on this host. Float in, float out for validation (``run``); the native round trip
    (``set_input`` → ``invoke`` → ``get_output``) for timing, with the input preallocated by the caller."""

    runtime: str = ""
    runtime_version: str = ""
    compute_unit: str = "cpu"
    threads: int | None = None  # intra-op threads the runtime was given (None: the runtime has no such setting)

    @abstractmethod
    def native_input(self, x: np.ndarray) -> np.ndarray:
        """Turn a float NCHW input (preprocessed per the spec) into the artifact's native input (dtype, layout,
        quantization)."""

    @abstractmethod
    def set_input(self, x: np.ndarray) -> None: ...

    @abstractmethod
    def invoke(self) -> None: ...

    @abstractmethod
    def get_output(self) -> np.ndarray: ...

    def float_output(self, y: np.ndarray) -> np.ndarray:
        """Native output → float logits (dequantize if needed)."""
        return np.asarray(y, dtype=np.float32)

    def run(self, x: np.ndarray) -> np.ndarray:
        self.set_input(self.native_input(x))
        self.invoke()
        return self.float_output(self.get_output())

    def close(self) -> None:  # noqa: B027 - optional hook
        pass


@dataclass
class ExportState:
    """The one explicit state object passed through the pipeline steps."""

    model_name: str
    target: Target
    spec: Any = None  # ModelSpec
    model: Any = None  # deploy-form nn.Module (eval)
    train_model: Any = None
    weights: str | None = None  # path or None (random init)
    weights_tag: str = "random"
    example_input: Any = None  # torch.Tensor (1, C, H, W)
    reference_output: Any = None
    calibration: list[np.ndarray] = field(default_factory=list)
    holdout: list[np.ndarray] = field(default_factory=list)
    options: dict[str, Any] = field(default_factory=dict)
    dependencies: dict[str, Artifact] = field(default_factory=dict)
    workdir: Path | None = None
    # the artifact's I/O contract, filled by convert(): {"inputs": [{name, shape, dtype, layout,
    # quantization?}], "outputs": [{name, shape, dtype, quantization?}]}; the pipeline fills a default
    io: dict[str, Any] = field(default_factory=dict)
    artifact: Artifact | None = None
    reports: dict[str, Any] = field(default_factory=dict)
    status: Status = Status.SKIPPED
    source: Any = None  # exporter.source.ModelSource: zoo name, user factory or in-memory module
    labels: list[str] | None = None  # class names, embedded in the artifact and the manifest


def package_versions(names) -> dict[str, str]:
    """{distribution: version} for the installed ones among ``names``."""
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in names:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            continue
    return out


class Converter(ABC):
    format: str = ""
    targets: tuple[Target, ...] = ()
    runtime_name: str = ""
    default_scheme: str = "fp32"  # the scheme a format subcommand uses when no --fp16/--int8/--w8 is given
    extension: str = ""  # artifact file suffix, e.g. ".onnx", ".tflite", ".mlpackage"
    range_search: bool = False  # its int8 honours options["range_search"] (quantization.range_search)

    # --- CLI hook: format-specific options of `mobexport <format>` (called by commands/export.py) ---
    def add_cli_options(self, parser) -> None:  # noqa: B027 - optional hook
        """Add this format's own flags to its argparse subparser. Must not import the backend."""

    def options_from_args(self, args) -> dict[str, Any]:
        """Turn the parsed flags added by ``add_cli_options`` into ``state.options`` entries."""
        return {}

    # --- pipeline hooks with defaults ---
    def artifact_filename(self, state: ExportState) -> str:
        return f"{state.model_name}{self.extension}"

    def quantize(self, state: ExportState) -> None:  # noqa: B027 - optional hook
        """Torch-side quantization for schemes that need it (calibration images are in
        ``state.calibration``). Converters that quantize the converted artifact do it in ``convert``."""

    def manifest_extras(self, state: ExportState, artifact_path: Path) -> dict[str, Any]:
        """Format-specific manifest entries (e.g. quantization recipe, edgetpu_cpu_fallback)."""
        return {}

    packages: tuple[str, ...] = ()  # distributions whose versions go into the manifest

    def tool_versions(self) -> dict[str, str]:
        """Versions of the backend packages used (recorded in the manifest)."""
        return package_versions(self.packages)

    @abstractmethod
    def is_available(self) -> Availability:
        """Can this host *convert* to the format?"""

    def runtime_available(self) -> Availability:
        """Can this host *run* the format's artifacts? (Core ML off macOS, TensorRT without CUDA: no.)"""
        return self.is_available()

    @abstractmethod
    def convert(self, state: ExportState, out_path: Path) -> Path:
        """Write the artifact for ``state.target`` from ``state.model`` to ``out_path`` (a temp path the
        pipeline renames when everything succeeded). Returns the artifact path."""

    @abstractmethod
    def load(self, artifact: Artifact, threads: int | None = None) -> Runner:
        """A Runner for ``artifact``; ``threads`` is the intra-op thread count where the runtime takes one."""

    def check_structure(self, artifact_path: Path, state: ExportState) -> list[str]:
        """Structural problems of the artifact that need no runtime (e.g. BatchNorm left). Empty = fine."""
        return []

    def embed_metadata(self, artifact_path: Path, metadata: dict[str, str]) -> None:  # noqa: B027
        """Write the manifest's metadata into the artifact where the format allows."""

    def read_metadata(self, artifact_path: Path) -> dict[str, str]:
        """The key/value metadata embedded by ``embed_metadata`` (``mobexport.labels`` holds the class names as
        JSON), read back from the artifact itself. Empty where the format has no place for it."""
        return {}


# ---------------------------------------------------------------- backend failure → layer

def locate_op(model: Any, example_input: Any, op: str) -> str:
    """Qualified name of the first module whose forward issues aten op ``op`` (e.g. "gelu"); "?" if none."""
    from mobexport.exporter.profile import profile_ops

    try:
        for r in profile_ops(model, example_input):
            if r.op == op:
                return r.layer or "<model>"
    except Exception:  # locating is best effort; the original error is what matters
        pass
    return "?"


def unsupported_op_from(exc: BaseException, state: ExportState, backend: str):
    """An ``UnsupportedOpError`` naming the aten op and layer when a backend error message names an aten op
    (``aten.gelu.default``, ``aten::gelu``); None otherwise. Converters raise it ``from exc``."""
    import re

    from mobexport.exporter.errors import UnsupportedOpError

    m = re.search(r"aten(?:\.|::)(\w+)", str(exc))
    if not m or state.model is None:
        return None
    return UnsupportedOpError(f"aten.{m.group(1)}", locate_op(state.model, state.example_input, m.group(1)),
                              backend=backend)
