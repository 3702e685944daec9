"""Runtime registry: what *runs* an artifact, separate from what *writes* it (``converters/<format>.py``).

A runtime module ``converters/runtimes/<name>.py`` decorates a ``Runtime`` subclass with ``@register_runtime``;
every module of this package (and of any folder added to its ``__path__``) is imported on first use, so a
second runtime for a format is one file. A runtime has a ``name``, the ``formats`` it runs, ``version()``,
``available()`` (an ``Availability`` with the install hint) and ``load(artifact_path, manifest, threads,
options) -> Runner``. Validation, ``Converter.load``, ``mobexport bench`` (``--runtime NAME``), the lookup tables,
TensorRT engines and the PyTorch baseline all go through it, and all time with its one loop (``warm_up`` and
``time_round_trips``, ``_timing.py``); the default for a format is its first runtime by ``rank`` (then registration
order). Runtime modules import their backend inside functions only, so the registry is cheap to scan and a
timing worker (``benchmarks/worker.py``) imports nothing but its runtime and numpy.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

from mobexport.exporter.errors import UnknownNameError, UsageError

from .. import _registry
from ..base import Availability, Runner
from ._timing import time_round_trips, warm_up

__all__ = ["Runtime", "available_runtimes", "default_runtime", "get_runtime", "register_runtime", "runtimes_for",
           "time_round_trips", "warm_up"]

_REGISTRY: dict[str, Runtime] = {}
_BROKEN: dict[str, str] = {}
_scanned: list[str] = []


class Runtime(ABC):
    """One way of running artifacts of some formats on this host (a subclass must implement ``load``)."""

    name: str = ""
    formats: tuple[str, ...] = ()
    rank: int = 100  # the default runtime of a format is the one of lowest rank
    packages: tuple[str, ...] = ()  # distributions whose version is reported (the first one is ``version()``)
    modules: tuple[str, ...] = ()  # what must import to run; else ``pip install 'mobexport[<extra>]'``
    extra: str = ""

    def version(self) -> str:
        from ..base import package_versions

        versions = package_versions(self.packages)
        return next(iter(versions.values()), "unknown")

    def available(self) -> Availability:
        return Availability.check_modules(self.modules, self.extra or (self.formats[0] if self.formats else ""))

    @abstractmethod
    def load(self, artifact_path: str | Path, manifest: dict[str, Any] | None = None, threads: int | None = None,
             options: dict[str, Any] | None = None) -> Runner:
        """A Runner for the artifact; unknown ``options`` are a ValueError naming the ones it takes."""

    def take_options(self, options: dict[str, Any] | None, **known: Any) -> dict[str, Any]:
        """The ``known`` options (name=default) filled from ``options``; any other key is a ValueError naming
        the ones this runtime takes."""
        given = dict(options or {})
        unknown = sorted(set(given) - set(known))
        if unknown:
            raise ValueError(f"{self.name} options: {', '.join(sorted(known)) or 'none'}; got unknown {unknown}")
        return {**known, **given}

    def profile_options(self, folder: str) -> dict[str, Any] | None:
        """Load options that make a Runner write a per-layer profile into ``folder`` (read back by
        ``read_profile`` after ``Runner.close``); None: this runtime offers no per-layer profiler."""
        return None

    def profile_note(self) -> str:
        """Why there is no per-layer profile (``profile_options`` is None): stored in the record's notes."""
        return f"{self.name} offers no per-layer profiler"

    def read_profile(self, runner: Runner) -> list[dict[str, Any]]:
        """Per layer, in graph order: ``{"layer", "op", "runs", "min_us", "mean_us", "output_shape"}``. Only asked
        of runtimes whose ``profile_options`` is not None, which must override it; a runtime without a profiler
        refuses with its ``profile_note``."""
        if self.profile_options(".") is None:
            raise NotImplementedError(self.profile_note())
        raise TypeError(f"runtime {self.name} offers profile_options but does not override read_profile")

    def __repr__(self) -> str:
        return f"<runtime {self.name} ({', '.join(self.formats)})>"


def register_runtime(cls: type[Runtime]) -> type[Runtime]:
    """Class decorator: register one instance of ``cls`` under ``cls.name``."""
    if not cls.name or not cls.formats:
        raise TypeError(f"{cls.__name__}: a runtime declares its name and the formats it runs")
    _registry.add(_REGISTRY, cls.name, cls, "runtime")
    return cls


def _discover() -> None:
    _registry.scan(__name__, __path__, _scanned, _BROKEN)


def names() -> list[str]:
    _discover()
    return sorted(_REGISTRY, key=lambda n: (_REGISTRY[n].rank, n))


def get_runtime(name: str) -> Runtime:
    _discover()
    if name in _REGISTRY:
        return _REGISTRY[name]
    if name in _BROKEN:
        raise UsageError(f"the runtime '{name}' does not load in this installation: {_BROKEN[name]}")
    raise UnknownNameError("runtime", name, names())


def runtimes_for(fmt: str) -> list[Runtime]:
    """The runtimes that run ``fmt``, the default first."""
    return [_REGISTRY[n] for n in names() if fmt in _REGISTRY[n].formats]


def default_runtime(fmt: str) -> Runtime:
    found = runtimes_for(fmt)
    if not found:
        raise UsageError(f"no runtime runs format '{fmt}' (runtimes: {', '.join(names()) or 'none'})")
    return found[0]


def available_runtimes(fmt: str) -> list[Runtime]:
    return [r for r in runtimes_for(fmt) if r.available().ok]


def choose(fmt: str, name: str | None = None) -> Runtime:
    """``name`` if given (it must run ``fmt``), else the format's default runtime."""
    if not name:
        return default_runtime(fmt)
    rt = get_runtime(name)
    if fmt not in rt.formats:
        raise UsageError(f"runtime '{name}' does not run format '{fmt}' (it runs {', '.join(rt.formats)}); "
                         f"runtimes for {fmt}: {', '.join(r.name for r in runtimes_for(fmt)) or 'none'}")
    return rt
