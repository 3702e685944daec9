"""The one model registry. Families register their variants (data, not code) at import time.

Family modules live in ``exporter/models/`` and are discovered automatically, so adding a family
touches no shared file.
"""

from __future__ import annotations

import fnmatch
import importlib
import json
import pkgutil
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .errors import UnknownNameError
from .specs import ModelSpec


@dataclass(frozen=True)
class Entry:
    spec: ModelSpec
    builder: Callable  # builder(num_classes=1000) -> nn.Module (train-time form)


_MODELS: dict[str, Entry] = {}
_ALIASES: dict[str, str] = {}
_LOADED = False


def register(spec: ModelSpec, builder: Callable) -> None:
    if spec.name in _MODELS:
        raise ValueError(f"model '{spec.name}' registered twice")
    _MODELS[spec.name] = Entry(spec, builder)
    for alias in spec.aliases:
        if alias in _ALIASES or alias in _MODELS:
            raise ValueError(f"alias '{alias}' of '{spec.name}' is already taken")
        _ALIASES[alias] = spec.name


def _ensure_loaded() -> None:
    global _LOADED
    if _LOADED:
        return
    _LOADED = True
    from . import models

    for info in pkgutil.iter_modules(models.__path__):
        if not info.name.startswith("_"):
            importlib.import_module(f"{models.__name__}.{info.name}")


def _natural_key(name: str):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def list_models(pattern: str = "*") -> list[str]:
    """Canonical model names matching a shell-style pattern, in natural order (s0, s1, …, s4)."""
    _ensure_loaded()
    names = [n for n in _MODELS if fnmatch.fnmatchcase(n, pattern)]
    if pattern != "*":  # a timm alias pattern selects its canonical models too
        names += [c for a, c in _ALIASES.items() if fnmatch.fnmatchcase(a, pattern)]
    return sorted(set(names), key=_natural_key)


def resolve(name: str) -> str:
    """Canonical name for a canonical name or alias; UnknownNameError with suggestions otherwise."""
    _ensure_loaded()
    if name in _MODELS:
        return name
    if name in _ALIASES:
        return _ALIASES[name]
    raise UnknownNameError("model", name, _MODELS, extra_names=_ALIASES)


def get_spec(name: str) -> ModelSpec:
    return _MODELS[resolve(name)].spec


def get_builder(name: str) -> Callable:
    return _MODELS[resolve(name)].builder


def aliases() -> dict[str, str]:
    _ensure_loaded()
    return dict(_ALIASES)


# ---------------------------------------------------------------- names without importing torch

INDEX_PATH = Path(__file__).parent / "models" / "names.json"


def name_index() -> dict[str, str] | None:
    """{canonical name or alias: canonical name} from the committed index (``exporter/models/names.json``,
    written by ``write_index``; a test keeps it equal to the registry). Reading it imports no family module,
    so a typo is answered before torch loads. None when the file is missing (the caller then asks the
    registry itself)."""
    try:
        data = json.loads(INDEX_PATH.read_text())
    except (OSError, ValueError):
        return None
    return {**{n: n for n in data["models"]}, **data["aliases"]}


def check_name(name: str) -> None:
    """UnknownNameError with did-you-mean for a name the index does not know; nothing heavy is imported."""
    index = name_index()
    if index is None or name in index:
        return
    canonical = set(index.values())
    raise UnknownNameError("model", name, canonical, extra_names=[a for a in index if a not in canonical])


def write_index(path: Path = INDEX_PATH) -> Path:
    """Write the name index from the live registry (``python -m mobexport.exporter.registry``)."""
    _ensure_loaded()
    path.write_text(json.dumps({"models": list_models(), "aliases": dict(sorted(_ALIASES.items()))}, indent=1)
                    + "\n")
    return path


if __name__ == "__main__":  # run as a script this file is __main__, not the registry the families fill
    from mobexport.exporter import registry

    print(registry.write_index())
