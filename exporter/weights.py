"""Loading local checkpoints: our own layout or a reference layout, train-time or deploy form.

Files are read with ``torch.load(weights_only=True)`` (never a full unpickle) or safetensors. Common
wrappers (``state_dict``, ``model``, ``model_state``, ``module.`` prefixes) are unwrapped. Then every
candidate (our layout; each registered reference layout of the family) × (train form; deploy form) is
compared key-by-key and shape-by-shape with the model; only an exact match is loaded — never a partial
load. On failure the error names the first missing / unexpected / mis-shaped keys of the closest candidate.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from .errors import WeightsError

StateDict = dict[str, torch.Tensor]


@dataclass(frozen=True)
class KeyLayout:
    """A reference checkpoint key layout and the mapping to/from our own module names."""

    name: str
    to_ours: Callable[[StateDict], StateDict]
    from_ours: Callable[[StateDict], StateDict]
    description: str = ""


_LAYOUTS: dict[str, list[KeyLayout]] = {}


def register_layout(family: str, layout: KeyLayout) -> None:
    _LAYOUTS.setdefault(family, []).append(layout)


def layouts(family: str) -> list[KeyLayout]:
    return list(_LAYOUTS.get(family, []))


def get_layout(family: str, name: str) -> KeyLayout:
    for lay in _LAYOUTS.get(family, []):
        if lay.name == name:
            return lay
    raise KeyError(f"no layout '{name}' for family '{family}'")


def read_state_dict(path: str | os.PathLike) -> StateDict:
    """Read a checkpoint file into a flat {key: tensor} dict, safely. Raises WeightsError."""
    p = Path(path)
    if not p.is_file():
        raise WeightsError(f"weights file not found: {p}")
    try:
        if p.suffix == ".safetensors":
            from safetensors.torch import load_file

            sd = load_file(str(p))
        else:
            sd = torch.load(str(p), map_location="cpu", weights_only=True)
    except Exception as e:  # corrupt zip, pickle with disallowed globals, truncated file …
        raise WeightsError(f"cannot read weights file {p}: {type(e).__name__}: {e}".strip()) from None
    return _unwrap(sd, p)


def _unwrap(obj, p: Path) -> StateDict:
    for _ in range(3):
        if isinstance(obj, dict) and not _is_tensor_dict(obj):
            for key in ("state_dict", "model_state", "model", "model_ema", "state_dict_ema"):
                if key in obj and isinstance(obj[key], dict):
                    obj = obj[key]
                    break
            else:
                break
    if not isinstance(obj, dict) or not _is_tensor_dict(obj):
        raise WeightsError(f"{p} does not contain a state_dict (a mapping of names to tensors)")
    if obj and all(k.startswith("module.") for k in obj):
        obj = {k[len("module."):]: v for k, v in obj.items()}
    return dict(obj)


def _is_tensor_dict(d: dict) -> bool:
    return bool(d) and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in d.items())


@dataclass
class Diff:
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mis_shaped: list[tuple[str, tuple, tuple]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.mis_shaped)

    @property
    def size(self) -> int:
        return len(self.missing) + len(self.unexpected) + len(self.mis_shaped)

    def describe(self, n: int = 5) -> str:
        parts = []
        if self.missing:
            parts.append(f"{len(self.missing)} missing (first: {', '.join(self.missing[:n])})")
        if self.unexpected:
            parts.append(f"{len(self.unexpected)} unexpected (first: {', '.join(self.unexpected[:n])})")
        if self.mis_shaped:
            shown = "; ".join(f"{k}: file {tuple(a)} vs model {tuple(b)}" for k, a, b in self.mis_shaped[:n])
            parts.append(f"{len(self.mis_shaped)} mis-shaped ({shown})")
        return ", ".join(parts) or "exact match"


def diff_state_dict(model_sd: StateDict, sd: StateDict) -> Diff:
    ignore = lambda k: k.endswith("num_batches_tracked")  # noqa: E731
    want = {k: v for k, v in model_sd.items() if not ignore(k)}
    have = {k: v for k, v in sd.items() if not ignore(k)}
    d = Diff()
    d.missing = [k for k in want if k not in have]
    d.unexpected = [k for k in have if k not in want]
    d.mis_shaped = [(k, tuple(have[k].shape), tuple(want[k].shape)) for k in want
                    if k in have and tuple(have[k].shape) != tuple(want[k].shape)]
    return d


def load_into(model: nn.Module, family: str, sd: StateDict, *, source: str = "state_dict") -> str:
    """Load ``sd`` into ``model`` (train form, as built) exactly, trying every layout × form.

    Returns a description such as ``"timm (train form)"``. If the only match is a deploy-form layout,
    the model is re-parameterized first (in place). Raises WeightsError naming the closest candidate's
    differences; the model is untouched then.
    """
    from .passes.reparameterize import reparameterize

    candidates: list[tuple[str, StateDict]] = [("mobexport", sd)]
    for lay in layouts(family):
        try:
            candidates.append((lay.name, lay.to_ours(sd)))
        except Exception:  # a mapping that does not apply to this file
            continue
    train_sd = model.state_dict()
    best: tuple[int, str, str, Diff, StateDict] | None = None  # (size, layout, form, diff, model state)
    for name, cand in candidates:
        d = diff_state_dict(train_sd, cand)
        if d.ok:
            _strict_load(model, cand)
            return f"{name} (train form)"
        if best is None or d.size < best[0]:
            best = (d.size, name, "train", d, train_sd)
    # deploy form: only build it if some candidate could match it
    import copy

    deploy = reparameterize(copy.deepcopy(model))
    deploy_sd = deploy.state_dict()
    for name, cand in candidates:
        d = diff_state_dict(deploy_sd, cand)
        if d.ok:
            reparameterize(model)
            _strict_load(model, cand)
            return f"{name} (deploy form)"
        if d.size < best[0]:
            best = (d.size, name, "deploy", d, deploy_sd)
    _, layout_name, form, d, model_sd = best
    raise WeightsError(f"weights in {source} do not match this model; closest layout: {layout_name} ({form} form): "
                       f"{_in_file_naming(family, layout_name, d, sd, model_sd)}")


def _in_file_naming(family: str, layout_name: str, d: Diff, sd: StateDict, model_sd: StateDict) -> str:
    """The differences named as the *file* names its keys: the model's state_dict mapped into the closest
    layout and compared with the file there (falls back to our naming if that layout cannot map it)."""
    if layout_name == "mobexport":
        return d.describe()
    try:
        expected = get_layout(family, layout_name).from_ours(model_sd)
    except Exception:  # a layout that cannot express this model: keep our naming
        return d.describe() + " (our key names)"
    file_diff = diff_state_dict(expected, sd)
    return (file_diff if file_diff.size else d).describe() + (" (the file's key names)" if file_diff.size
                                                              else " (our key names)")


def _strict_load(model: nn.Module, sd: StateDict) -> None:
    full = model.state_dict()
    merged = {k: sd.get(k, full[k]) for k in full}  # num_batches_tracked may be absent in files
    model.load_state_dict(merged, strict=True)


def load_weights(model: nn.Module, family: str, path: str | os.PathLike) -> str:
    return load_into(model, family, read_state_dict(path), source=str(path))
