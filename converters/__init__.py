"""Converter registry: one ``Converter`` per format, registered where it is defined.

A converter module ``converters/<format>.py`` decorates its class with ``@register_converter``; every module of
this package (and of any folder added to its ``__path__``) is imported on first use, so a new format is one
file: targets, schemes, ``mobexport <format>`` with its flags, the result schema's target values and the test
matrix all follow from the registry. Importing a converter module is cheap (backends are imported inside
functions); a module that fails to import is left out and named by ``get_converter``.
"""

from __future__ import annotations

from mobexport.exporter.errors import UnknownNameError, UsageError

from . import _registry
from .base import Artifact, Availability, Converter, ExportState, Runner, Target

__all__ = ["Artifact", "Availability", "Converter", "ExportState", "Runner", "Target", "all_targets",
           "formats", "get_converter", "register_converter", "resolve_target", "target_for"]

_REGISTRY: dict[str, Converter] = {}
_BROKEN: dict[str, str] = {}  # module name -> why it did not import
_scanned: list[str] = []  # the __path__ entries scanned so far


def register_converter(cls: type[Converter]) -> type[Converter]:
    """Class decorator: register one instance of ``cls`` under ``cls.format``."""
    if not cls.format or not cls.targets or any(t.format != cls.format for t in cls.targets):
        raise TypeError(f"{cls.__name__}: a converter declares its format and targets, every target of that format")
    _registry.add(_REGISTRY, cls.format, cls, "format")
    return cls


def _discover() -> None:
    """Import every module of the package not imported yet (once per ``__path__`` entry)."""
    _registry.scan(__name__, __path__, _scanned, _BROKEN)


def formats() -> list[str]:
    """Registered formats (their converter module imports; their backend may be missing), by rank and name."""
    _discover()
    return sorted(_REGISTRY, key=lambda f: (_REGISTRY[f].rank, f))


def get_converter(fmt: str) -> Converter:
    _discover()
    if fmt in _REGISTRY:
        return _REGISTRY[fmt]
    if fmt in _BROKEN:
        raise UsageError(f"the converter for format '{fmt}' does not load in this installation: {_BROKEN[fmt]} "
                         f"(converters present: {', '.join(formats()) or 'none'})")
    raise UnknownNameError("format", fmt, formats())


def all_targets() -> list[Target]:
    return [t for f in formats() for t in _REGISTRY[f].targets]


def resolve_target(target_id: str) -> Target:
    """The Target for an id like ``tflite-w8a8``; UnknownNameError with did-you-mean otherwise."""
    targets = {t.id: t for t in all_targets()}
    if target_id not in targets:
        raise UnknownNameError("target", target_id, targets)
    return targets[target_id]


def target_for(fmt: str, flags: dict[str, bool] | None = None) -> Target:
    """Map a format subcommand and its precision flags (``fp16``, ``int8``, ``w8``; mutually exclusive) onto
    a target. No flag → the converter's ``default_scheme``."""
    from mobexport.quantization.schemes import FLAG_SCHEMES

    conv = get_converter(fmt)
    on = [f for f, v in (flags or {}).items() if v]
    unknown = [f for f in on if f not in FLAG_SCHEMES]
    if unknown:
        raise UsageError(f"unknown precision flag(s): {', '.join('--' + f for f in unknown)}")
    if len(on) > 1:
        raise UsageError(f"{' and '.join('--' + f for f in on)} are mutually exclusive: choose one precision")
    scheme = FLAG_SCHEMES[on[0]] if on else conv.default_scheme
    for t in conv.targets:
        if t.scheme == scheme:
            return t
    offered = ", ".join(t.id for t in conv.targets)
    flag = f"--{on[0]}" if on else "the default precision"
    raise UsageError(f"{fmt} does not offer {flag} (scheme {scheme}); targets: {offered}")
