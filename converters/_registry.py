"""What the converter and runtime registries share: register one instance per name, and import every module
of a package's ``__path__`` once (a module that fails to import is left out with the reason)."""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any


def add(registry: dict[str, Any], key: str, cls: type, kind: str) -> None:
    """``registry[key] = cls()``; a second class under the same ``key`` is a TypeError."""
    known = registry.get(key)
    if known is not None and type(known).__qualname__ != cls.__qualname__:
        raise TypeError(f"{kind} '{key}' registered twice: {type(known).__name__} and {cls.__name__}")
    registry[key] = cls()


def scan(package: str, path: list[str], scanned: list[str], broken: dict[str, str]) -> None:
    """Import the modules of ``path`` entries not in ``scanned`` yet (names starting with "_" excepted)."""
    new = [p for p in path if p not in scanned]
    for info in pkgutil.iter_modules(new):
        if info.name.startswith("_"):
            continue
        try:
            importlib.import_module(f"{package}.{info.name}")
        except ImportError as e:
            broken[info.name] = f"{type(e).__name__}: {e}"
    scanned.extend(new)
