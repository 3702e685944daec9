"""Where the model comes from: a zoo name, a user factory (``file.py:fn`` / ``package.module:fn``) or an
in-memory ``nn.Module`` handed to the Python API — and what its weights are.

A factory reference runs the user's code **by design** (like ``torch.hub`` or ``timm``'s entry points, but
only from a local file or an importable module): the CLI says so in ``--help``. The factory must return an
``nn.Module``; anything else, a missing file or name, or an exception inside it is a ``UsageError`` naming the
reference, before any work starts.

Random weights are named as such everywhere: ``random_weights_tag(seed)`` is the weights tag that the
manifest, the console, the results rows and the plots carry.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import UsageError

RANDOM_NOTE = "latency is real, accuracy is not"


def random_weights_tag(seed: int) -> str:
    """The weights tag of a zoo model built without ``--weights`` (deterministic init from ``seed``)."""
    return f"random weights (seed {seed}): {RANDOM_NOTE}"


def is_random_tag(tag: str | None) -> bool:
    return bool(tag) and str(tag).startswith("random")


def is_factory_ref(text: str) -> bool:
    """``path/to/file.py:fn`` or ``package.module:fn`` (zoo names never hold a colon)."""
    return ":" in text


@dataclass
class ModelSource:
    """How to build the train-form model again (recorded in the manifest as ``model_source``)."""

    kind: str  # "zoo" | "factory" | "module"
    name: str  # canonical zoo name, the factory's name, or the module's class name (lower case)
    ref: str = ""  # factory reference as given
    kwargs: dict[str, Any] = field(default_factory=dict)  # passed to the factory (num_classes when given)
    file_sha256: str | None = None  # of the factory's source file
    cls: str = ""  # "package.module.Class" of the built module
    module: Any = None  # the nn.Module itself (kind "module"); never serialised
    factory: Any = None  # the factory callable (kind "factory"); never serialised

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"kind": self.kind, "name": self.name}
        if self.kind == "factory":
            d.update(ref=self.ref, kwargs=dict(self.kwargs), file_sha256=self.file_sha256)
        if self.cls:
            d["class"] = self.cls
        return d


def checkpoint_tag(path: str | os.PathLike, sha256: str) -> str:
    """The weights tag of a checkpoint file: its name and the start of its sha256."""
    return f"{Path(path).name}@sha256:{sha256[:12]}"


def state_dict_sha256(model) -> str:
    """sha256 over a module's state_dict (names and tensor bytes, in order): the identity of in-memory weights."""
    h = hashlib.sha256()
    for k, v in model.state_dict().items():
        h.update(k.encode() + b"\0" + v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def _import_factory_module(target: str, ref: str):
    """The module named by the part before the colon: a ``.py`` path or an importable dotted name."""
    looks_like_path = target.endswith(".py") or os.sep in target or "/" in target
    if looks_like_path:
        path = Path(target).expanduser()
        if not path.is_file():
            raise UsageError(f"factory file not found: {path} (from '{ref}')",
                             hint="use path/to/file.py:function or package.module:function")
        mod_name = f"mobexport_user_{hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:12]}"
        spec = importlib.util.spec_from_file_location(mod_name, path)
        if spec is None or spec.loader is None:
            raise UsageError(f"cannot import {path} as a Python module (from '{ref}')")
        module = importlib.util.module_from_spec(spec)
        sys.modules[mod_name] = module
        try:
            spec.loader.exec_module(module)
        except Exception as e:  # the user's module failed at import time
            sys.modules.pop(mod_name, None)
            raise UsageError(f"importing {path} failed: {type(e).__name__}: {e}") from e
        return module, path
    try:
        module = importlib.import_module(target)
    except ImportError as e:
        raise UsageError(f"cannot import module '{target}' (from '{ref}'): {e}",
                         hint="is the package installed, or did you mean a file path ending in .py?") from e
    except Exception as e:  # noqa: BLE001 - the user's package raised while importing
        raise UsageError(f"importing {target} failed: {type(e).__name__}: {e}") from e
    file = getattr(module, "__file__", None)
    return module, Path(file) if file else None


def load_factory(ref: str) -> tuple[Callable[..., Any], ModelSource]:
    """The callable named by ``ref`` and its (not yet built) ``ModelSource``. Runs the user's module code."""
    target, _, attr = ref.rpartition(":")
    if not target or not attr:
        raise UsageError(f"bad factory reference '{ref}': expected path/to/file.py:function or "
                         "package.module:function")
    module, path = _import_factory_module(target, ref)
    fn = module
    for part in attr.split("."):
        if not hasattr(fn, part):
            names = [n for n in dir(module) if not n.startswith("_") and callable(getattr(module, n))]
            raise UsageError(f"'{target}' has no attribute '{attr}'; callables there: {', '.join(names) or 'none'}")
        fn = getattr(fn, part)
    if not callable(fn):
        raise UsageError(f"'{ref}' is not callable (a {type(fn).__name__})")
    from .assets import sha256_file

    sha = sha256_file(path) if path is not None and path.is_file() else None
    return fn, ModelSource("factory", attr.split(".")[-1].lower(), ref=ref, file_sha256=sha)


def call_factory(fn: Callable[..., Any], source: ModelSource, num_classes: int | None = None):
    """Build the model: ``fn(num_classes=N)`` when a class count is asked for, else ``fn()``."""
    import torch

    kwargs: dict[str, Any] = {}
    if num_classes is not None:
        try:
            params = inspect.signature(fn).parameters
        except (TypeError, ValueError):
            params = {}
        takes = "num_classes" in params or any(p.kind is p.VAR_KEYWORD for p in params.values())
        if not takes:
            raise UsageError(f"--num-classes {num_classes}: factory '{source.ref}' takes no num_classes argument",
                             hint="add a num_classes parameter to the factory, or drop --num-classes")
        kwargs["num_classes"] = num_classes
    try:
        model = fn(**kwargs)
    except Exception as e:  # the user's code raised: their error, named, exit 2
        raise UsageError(f"factory '{source.ref}' raised {type(e).__name__}: {e}") from e
    if not isinstance(model, torch.nn.Module):
        raise UsageError(f"factory '{source.ref}' returned {type(model).__name__}, not a torch.nn.Module")
    source.kwargs = kwargs
    source.cls = f"{type(model).__module__}.{type(model).__qualname__}"
    return model


def module_source(model: Any, name: str | None = None) -> ModelSource:
    """A source for an in-memory module handed to ``export()``."""
    cls = f"{type(model).__module__}.{type(model).__qualname__}"
    return ModelSource("module", name or type(model).__name__.lower(), cls=cls, module=model)


def check_name(name: str) -> str:
    """A model name usable as a folder name (``OUT/<name>/<target>/``)."""
    import re

    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,127}", name or ""):
        raise UsageError(f"bad model name '{name}': letters, digits and _.+- only (it names the output folder)",
                         hint="pass --name NAME")
    return name


def read_labels(path: str | os.PathLike) -> list[str]:
    """Class names, one a line (UTF-8); blank lines at the end are ignored, blank lines inside are an error."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"labels file not found: {p}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise UsageError(f"cannot read labels file {p}: {e}") from None
    lines = [ln.strip() for ln in text.splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    blank = [i + 1 for i, ln in enumerate(lines) if not ln]
    if not lines:
        raise UsageError(f"labels file {p} is empty (one class name a line)")
    if blank:
        raise UsageError(f"labels file {p}: blank line(s) {blank[:5]} (one class name a line)")
    return lines


def check_labels(labels: list[str] | None, num_classes: int, where: str) -> None:
    if labels is not None and len(labels) != num_classes:
        raise UsageError(f"{where}: {len(labels)} labels for a model with {num_classes} classes",
                         hint="one class name a line, in class-index order")
