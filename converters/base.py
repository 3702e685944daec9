"""The converter contract: Target, Availability, Artifact, Runner, Converter, ExportState, Options.

One module per format (onnx.py, tflite.py, coreml.py, tensorrt.py) implements ``Converter`` and registers it
with ``@register_converter`` (``converters/__init__.py``). Backends are imported inside functions only. A format
that builds on another declares it in ``Target.depends_on``; the pipeline runs that target first and hands its
artifact over in ``state.dependencies`` — converters never call each other.

Options are typed: ``GeneralOptions`` (policies of every export) and one ``Options`` dataclass per converter
(``Converter.Options``). ``parse_options`` builds both at the start of an export, before any work: unknown keys
and bad values are a UsageError. The format subcommands' flags are generated from the same fields.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import types
import typing
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mobexport.exporter.errors import UsageError
from mobexport.exporter.status import Status
from mobexport.quantization.schemes import get_scheme


@dataclass(frozen=True)
class Target:
    format: str
    scheme: str  # a row of quantization.schemes.SCHEMES: fp32 | fp16 | w8a8 | w8
    description: str = ""
    depends_on: tuple[str, ...] = ()  # target ids whose artifacts this one is built from

    def __post_init__(self):
        get_scheme(self.scheme)  # UnknownNameError for a scheme the table does not have

    @property
    def id(self) -> str:  # "<format>-<scheme>", e.g. "tflite-w8a8"
        return f"{self.format}-{self.scheme}"

    @property
    def precision(self) -> str:
        return get_scheme(self.scheme).precision

    @property
    def needs_calibration(self) -> bool:
        return get_scheme(self.scheme).needs_calibration


@dataclass(frozen=True)
class Availability:
    ok: bool
    reason: str = ""
    install_hint: str = ""

    @classmethod
    def check_modules(cls, modules: tuple[str, ...] | list[str], extra: str) -> Availability:
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

    _x: Any = None  # the input set_input holds for invoke

    def native_input(self, x: np.ndarray) -> np.ndarray:
        """Turn a float NCHW input (preprocessed per the spec) into the artifact's native input (dtype, layout,
        quantization)."""
        return np.ascontiguousarray(x, dtype=np.float32)

    def set_input(self, x: np.ndarray) -> None:
        self._x = x

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
    options: dict[str, Any] = field(default_factory=dict)  # checked GeneralOptions + converter Options fields
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


# ---------------------------------------------------------------- typed options

def option(default: Any = None, help: str = "", *, choices: tuple = (), minimum: int | None = None,
           cli: bool = True, needs=None) -> Any:
    """A typed option field. Its flag ``--name-with-dashes`` is generated from it (``cli=False``: Python only;
    ``needs(converter)`` false: no flag for that converter). ``default=dict`` means an empty dict."""
    meta = {"help": help, "choices": tuple(choices), "minimum": minimum, "cli": cli, "needs": needs}
    return field(default_factory=dict, metadata=meta) if default is dict else field(default=default, metadata=meta)


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _check_value(f: dataclasses.Field, hint: Any, value: Any) -> None:
    kinds = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)
    kinds = tuple(typing.get_origin(k) or k for k in kinds)
    ok = isinstance(value, kinds) and not (isinstance(value, bool) and bool not in kinds)
    if not ok:
        names = " or ".join("None" if k is type(None) else k.__name__ for k in kinds)
        raise UsageError(f"{flag(f.name)} must be {names}, got {value!r}")
    choices, minimum = f.metadata.get("choices"), f.metadata.get("minimum")
    if choices and value not in choices:
        raise UsageError(f"{flag(f.name)} must be one of {', '.join(map(str, choices))}, got {value!r}")
    if minimum is not None and value is not None and value < minimum:
        raise UsageError(f"{flag(f.name)} must be >= {minimum}, got {value!r}")


@dataclass(frozen=True)
class Options:
    """Base of the typed option sets: frozen dataclasses of ``option(...)`` fields."""

    @classmethod
    def names(cls) -> set[str]:
        return {f.name for f in dataclasses.fields(cls)}

    @classmethod
    def parse(cls, values: dict[str, Any], target: Target) -> Options:
        """From a dict of this set's keys; every value checked (type, choices, minimum), then ``check``."""
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if f.name in values:
                _check_value(f, hints[f.name], values[f.name])
        opts = cls(**values)
        opts.check(target)
        return opts

    @classmethod
    def of(cls, state: ExportState) -> Options:
        """This set, read from ``state.options`` (other keys ignored)."""
        own = cls.names()
        return cls.parse({k: v for k, v in state.options.items() if k in own}, state.target)

    def check(self, target: Target) -> None:
        """Rules between fields or with the target (e.g. a minimum OS for a scheme)."""


@dataclass(frozen=True)
class GeneralOptions(Options):
    """Policies of every export, whatever the converter."""

    seed: int = option(0, "seed of the random weights and the example input")
    random_bn_seed: int | None = option(None, "with random weights: the seed of the weights and randomized "
                                              "BatchNorm statistics (default: --seed)")
    require_validation: bool = option(False, "exit 3 before any work where this host has no runtime to "
                                             "validate the artifact (instead of writing it UNVALIDATED_NO_RUNTIME)")
    report: bool = option(False, "with --int8: per-layer sensitivity (SQNR) report",
                          needs=lambda c: any(t.needs_calibration for t in c.targets))
    range_search: bool = option(
        False, "experimental, with --int8: activation ranges searched for their effect on the class scores (KL) "
               "instead of per tensor; measure before using it (scripts/int8_agreement.py)",
        needs=lambda c: c.range_search)
    tolerances: dict = option(dict, "validator threshold overrides (quantization.validate.POLICIES keys)", cli=False)
    min_agreement: float | None = option(
        None, "with --int8: fidelity budget: keep the most sensitive layers at higher precision until top-1 "
              "agreement with float on the held-out crops is >= this (0-1); the artifact is then not full integer",
        needs=lambda c: any(t.needs_calibration for t in c.targets))
    min_sqnr: float | None = option(None, "with --int8: fidelity budget in logit SQNR (dB), as --min-agreement",
                                    needs=lambda c: any(t.needs_calibration for t in c.targets))
    keep_as: str = option("float", "with a fidelity budget: the precision kept layers get (float, or int16 "
                          "activations with int8 weights)", choices=("float", "int16"),
                          needs=lambda c: bool(getattr(c, "budget_keeps", ())))
    max_keep: int = option(16, "with a fidelity budget: the most segments (a layer through the next) kept before giving up (exit 1)", minimum=1,
                           needs=lambda c: bool(getattr(c, "budget_keeps", ())))
    full_integer: bool = option(False, "with --int8: the artifact is for a full-integer accelerator (Edge TPU, "
                                       "Pixel TPU): every op int8, so a fidelity budget cannot apply",
                                needs=lambda c: any(t.needs_calibration for t in c.targets))

    def check(self, target: Target) -> None:
        from mobexport.quantization.validate import POLICIES

        for name in ("report", "range_search", "min_agreement", "min_sqnr", "full_integer"):
            if getattr(self, name) not in (None, False) and not target.needs_calibration:
                raise UsageError(f"{flag(name)} applies to --int8 only")
        if self.min_agreement is not None and not 0 < self.min_agreement <= 1:
            raise UsageError(f"--min-agreement is a fraction in (0, 1], got {self.min_agreement}")
        if self.full_integer and self.budgeted:
            raise UsageError(f"{target.id} --full-integer stays full integer (Edge TPU / Pixel TPU run every op in "
                             "int8): a fidelity budget (--min-agreement / --min-sqnr) cannot apply to it")
        known = {k for policy in POLICIES.values() for k in policy}
        if set(self.tolerances) - known:
            raise UsageError(f"unknown tolerance(s) {', '.join(sorted(set(self.tolerances) - known))}; "
                             f"known: {', '.join(sorted(known))}")

    @property
    def budgeted(self) -> bool:
        return self.min_agreement is not None or self.min_sqnr is not None


BUDGET_NOT_BUILT = ("keeping layers at higher precision has no budget loop for this format; tflite-w8a8 and "
                    "tensorrt-w8a8 have one. --int8 alone gives full w8a8")


def parse_options(converter: Converter, target: Target, values: dict[str, Any] | None):
    """(GeneralOptions, the converter's Options) from one dict; UsageError for unknown keys (with did-you-mean)
    and bad values, before any work starts."""
    values = dict(values or {})
    general, own = GeneralOptions.names(), converter.Options.names()
    unknown = sorted(set(values) - general - own)
    if unknown:
        said = [f"'{k}'" + "".join(f" (did you mean '{m}'?)" for m in difflib.get_close_matches(
            k, general | own, n=1, cutoff=0.6)) for k in unknown]
        raise UsageError(f"unknown option(s) for {target.id}: {', '.join(said)}; "
                         f"options: {', '.join(sorted(general | own))}")
    g = GeneralOptions.parse({k: v for k, v in values.items() if k in general}, target)
    if g.range_search and not converter.range_search:
        raise UsageError(f"{flag('range_search')} is not offered by {target.format}")
    if g.budgeted and g.keep_as not in converter.budget_keeps:
        raise UsageError(f"{target.id}: a fidelity budget (--min-agreement / --min-sqnr) "
                         + (f"keeps layers as {', '.join(converter.budget_keeps)} only, not {g.keep_as}"
                            if converter.budget_keeps else f"is not built for {target.format}: "
                            f"{converter.budget_refusal or BUDGET_NOT_BUILT}"))
    return g, converter.Options.parse({k: v for k, v in values.items() if k in own}, target)


def package_versions(names) -> dict[str, str]:
    """{distribution: version} for the installed ones among ``names``."""
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in names:
        with contextlib.suppress(PackageNotFoundError):
            out[name] = version(name)
    return out


class Converter(ABC):
    format: str = ""
    summary: str = ""  # one line: the help of `mobexport <format>`
    rank: int = 100  # place in listings (CLI, matrix, tables): by rank, then by name
    # int8 with a fidelity budget (--min-agreement / --min-sqnr): the precisions a kept layer can have; () refuses
    # it with ``budget_refusal``
    budget_keeps: tuple[str, ...] = ()
    budget_refusal: str = ""
    targets: tuple[Target, ...] = ()
    Options: type[Options] = Options  # this format's typed options (none here); `mobexport <format>` flags follow
    runtime_name: str = ""
    default_scheme: str = "fp32"  # the scheme a format subcommand uses when no --fp16/--int8/--w8 is given
    extension: str = ""  # artifact file suffix, e.g. ".onnx", ".tflite", ".mlpackage"
    range_search: bool = False  # its int8 honours options["range_search"] (quantization.range_search)

    # --- pipeline hooks with defaults ---
    def artifact_filename(self, state: ExportState) -> str:
        return f"{state.model_name}{self.extension}"

    manifest_reports: tuple[str, ...] = ()  # state.reports entries the manifest carries ({} when absent)

    def manifest_extras(self, state: ExportState, artifact_path: Path) -> dict[str, Any]:
        """Format-specific manifest entries: ``manifest_reports``, then the quantization recipe if there is one."""
        extras = {k: state.reports.get(k, {}) for k in self.manifest_reports}
        for k in ("quantization", "int8_budget"):
            if k in state.reports:
                extras[k] = state.reports[k]
        return extras

    packages: tuple[str, ...] = ()  # distributions whose versions go into the manifest

    def tool_versions(self) -> dict[str, str]:
        """Versions of the backend packages used (recorded in the manifest)."""
        return package_versions(self.packages)

    modules: tuple[str, ...] = ()  # what must import to convert; else ``pip install 'mobexport[<format>]'``
    runtime_modules: tuple[str, ...] | None = None  # what must import to run the artifacts (None: as to convert)

    def is_available(self) -> Availability:
        """Can this host *convert* to the format?"""
        return Availability.check_modules(self.modules, self.format)

    def runtime(self, name: str | None = None):
        """The ``Runtime`` (``converters/runtimes``) that runs this format's artifacts: ``name``, or the default."""
        from .runtimes import choose

        return choose(self.format, name)

    def runtime_available(self) -> Availability:
        """Can this host *run* the format's artifacts with its default runtime? (Core ML off macOS: no.)"""
        from .runtimes import runtimes_for

        if runtimes_for(self.format):
            return self.runtime().available()
        if self.runtime_modules is None:
            return self.is_available()
        return Availability.check_modules(self.runtime_modules, self.format)

    @abstractmethod
    def convert(self, state: ExportState, out_path: Path) -> Path:
        """Write the artifact for ``state.target`` from ``state.model`` to ``out_path`` (a temp path the
        pipeline renames when everything succeeded). Returns the artifact path."""

    def load(self, artifact: Artifact, threads: int | None = None, runtime: str | None = None,
             options: dict[str, Any] | None = None) -> Runner:
        """A Runner for ``artifact`` from the runtime registry (``runtime``: a name, else the format's default);
        ``threads`` is the intra-op thread count where the runtime takes one. A format whose runtime is not in
        the registry overrides this."""
        return self.runtime(runtime).load(artifact.path, artifact.manifest, threads, options)

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
