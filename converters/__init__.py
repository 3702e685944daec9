"""Converter registry: one ``Converter`` per format, found in ``converters/<format>.py``.

A module provides its converter either as a module-level ``CONVERTER`` instance or as a ``Converter``
subclass whose ``format`` equals the module name (instantiated with no arguments). Importing a converter
module is cheap (backends are imported inside functions); a module that is missing or fails to import is
left out of ``all_targets()`` and reported by ``get_converter``.
"""

from __future__ import annotations

import importlib
import inspect
from functools import cache

from mobexport.exporter.errors import UnknownNameError, UsageError

from .base import FORMATS, Artifact, Availability, Converter, ExportState, Runner, Target

__all__ = ["FORMATS", "Artifact", "Availability", "Converter", "ExportState", "Runner", "Target",
           "all_targets", "available_formats", "get_converter", "resolve_target", "target_for"]


@cache
def _load(fmt: str) -> Converter | None:
    try:
        mod = importlib.import_module(f"{__name__}.{fmt}")
    except ImportError:
        return None
    conv = getattr(mod, "CONVERTER", None)
    if isinstance(conv, Converter):
        return conv
    for _, obj in inspect.getmembers(mod, inspect.isclass):
        if issubclass(obj, Converter) and not inspect.isabstract(obj) and obj.format == fmt:
            return obj()
    return None


def available_formats() -> list[str]:
    """Formats whose converter module is present (not necessarily whose backend is installed)."""
    return [f for f in FORMATS if _load(f) is not None]


def get_converter(fmt: str) -> Converter:
    if fmt not in FORMATS:
        raise UnknownNameError("format", fmt, FORMATS)
    conv = _load(fmt)
    if conv is None:
        raise UsageError(f"no converter for format '{fmt}' in this installation "
                         f"(converters present: {', '.join(available_formats()) or 'none'})")
    return conv


def all_targets() -> list[Target]:
    return [t for f in available_formats() for t in get_converter(f).targets]


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
