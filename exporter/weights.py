"""Loading local checkpoints: our own layout or a reference layout, train-time or deploy form.

Files are read with ``torch.load(weights_only=True)`` (never a full unpickle; ``argparse.Namespace`` and numpy
scalars, which training scripts store beside the weights, are the only extra types allowed) or safetensors.

Checkpoints as training code writes them are understood: a bare state_dict, or one wrapped under
``state_dict`` / ``model`` / ``model_state`` / ``module`` / ``net`` / ``params`` and their EMA twins
(``state_dict_ema``, ``model_ema``, ``ema``, ``ema_state_dict``), nested up to three levels, with DDP
``module.`` prefixes. **EMA first**: when a file holds both raw and EMA weights, the EMA weights are loaded, as
timm's ``load_checkpoint(use_ema=True)`` and cvnets' ``checkpoint_ema_best.pt`` do — they are the weights a
recipe evaluates and publishes; the entry used is named in the returned description (e.g. ``"timm (train
form), from 'state_dict_ema'"``). A leading key prefix that all keys share (Lightning's ``model.`` / ``net.`` /
``backbone.`` attribute, nested wrappers) is stripped when that, and only that, makes the keys match; so is a
prefix group such as a LightningModule's ``model.`` beside its ``ema_model.`` (EMA group first again).

Then every candidate (our layout; each registered reference layout of the family) × (train form; deploy form)
is compared key-by-key and shape-by-shape with the model; only an exact match is loaded — never a partial
load. A layout carries the numerical *conventions* of its reference implementation that keys and shapes
cannot show (e.g. torchvision builds MobileNetV3 with BatchNorm eps 1e-3); they are applied to the model after
a match and named in the description. A checkpoint that records its architecture (timm's ``arch``) as a
variant with the same keys but other numerics (timm's ``tf_mobilenetv3_*``, PyTorch ``efficientnet_lite*``) is
refused; a bare file cannot tell, and loads as the layout's registered variant. tests/test_golden.py checks
every layout against the reference implementation's own logits.

On failure the error names the first missing / unexpected / mis-shaped keys of the closest candidate, or the
class-count mismatch of the head with the flag that fixes it. A file holding NaN or Inf is refused before
anything is compared.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from .errors import WeightsError
from .keymap import KeyMap, StateDict


@dataclass(frozen=True)
class Conventions:
    """Numerics of a reference implementation that a checkpoint's keys and shapes cannot show.

    ``None`` means "as our model is built". ``apply`` sets them on every BatchNorm of a model and returns
    what it changed, in words ("" when nothing changed)."""

    bn_eps: float | None = None
    bn_momentum: float | None = None
    source: str = ""  # whose convention, for the description ("torchvision MobileNetV3")
    # variants of the reference with the same keys but other numerics, which our model does not implement:
    # (regex on the architecture name a checkpoint records, e.g. timm's "arch", why it is refused)
    other_variants: tuple[tuple[str, str], ...] = ()

    def refusal(self, arch: str) -> str | None:
        """Why a checkpoint recorded as architecture ``arch`` cannot be loaded in this layout, or None."""
        for pattern, why in self.other_variants:
            if arch and re.fullmatch(pattern, arch):
                return why
        return None

    def apply(self, model: nn.Module) -> str:
        changed: dict[str, float] = {}
        for m in model.modules():
            if not isinstance(m, nn.modules.batchnorm._BatchNorm):
                continue
            for attr, value in (("eps", self.bn_eps), ("momentum", self.bn_momentum)):
                if value is not None and getattr(m, attr) != value:
                    setattr(m, attr, value)
                    changed[attr] = value
        if not changed:
            return ""
        what = ", ".join(f"{k} {v:g}" for k, v in changed.items())
        return f"BatchNorm {what}" + (f" as {self.source} builds it" if self.source else "")


@dataclass(frozen=True)
class KeyLayout:
    """A reference checkpoint key layout: its key mapping to/from our own module names (a rule table of
    exporter/keymap.py, or anything with ``apply(sd, to_ours)``) and the reference's numerical conventions
    (applied to the model when a checkpoint in this layout is loaded)."""

    name: str
    keys: KeyMap
    description: str = ""
    conventions: Conventions = field(default_factory=Conventions)

    def to_ours(self, sd: StateDict) -> StateDict:
        return self.keys.apply(sd, to_ours=True)

    def from_ours(self, sd: StateDict) -> StateDict:
        return self.keys.apply(sd, to_ours=False)


_LAYOUTS: dict[str, list[KeyLayout]] = {}


def register_layout(family: str, layout: KeyLayout) -> None:
    _LAYOUTS.setdefault(family, []).append(layout)


def layouts(family: str) -> list[KeyLayout]:
    return list(_LAYOUTS.get(family, []))


def families() -> list[str]:
    """Every family that has at least one registered reference layout (the zoo's family files are imported
    first: they register their layouts)."""
    from . import registry

    registry.list_models()
    return sorted(_LAYOUTS)


def get_layout(family: str, name: str) -> KeyLayout:
    for lay in _LAYOUTS.get(family, []):
        if lay.name == name:
            return lay
    raise KeyError(f"no layout '{name}' for family '{family}'")


# --------------------------------------------------------------------------- reading a file

# wrapper keys in order of preference: EMA weights before raw ones (see the module docstring)
WRAPPERS = ("state_dict_ema", "model_ema", "ema_state_dict", "ema", "state_dict", "model_state", "model",
            "module", "net", "params")


@dataclass(frozen=True)
class Checkpoint:
    state_dict: StateDict
    entry: str  # where in the file it was found ("" for a bare state_dict, "state_dict_ema", "model.module" …)
    arch: str = ""  # the architecture name the file records, if any (timm train checkpoints: "arch")


def _safe_extra_globals() -> list:
    """Plain-data types training scripts save beside weights (timm: ``args`` Namespace; numpy metrics)."""
    import argparse

    import numpy as np

    extra = [argparse.Namespace, np.dtype]
    core = getattr(np, "_core", None) or np.core
    extra.append(core.multiarray.scalar)
    extra += [t for t in vars(np.dtypes).values() if isinstance(t, type) and issubclass(t, np.dtype)]
    return extra


_UNSAFE = re.compile(r"Unsupported global: GLOBAL ([\w.]+)")


def _read_error(p: Path, e: Exception) -> WeightsError:
    text = str(e)
    unsafe = _UNSAFE.search(text)
    if unsafe:
        return WeightsError(f"cannot read weights file {p}: it is not a plain tensor checkpoint (it holds a pickled "
                            f"{unsafe.group(1)} object); mobexport never unpickles arbitrary objects",
                            hint="in trusted code, load it and save model.state_dict() with torch.save or "
                                 "safetensors")
    # torch's advice to retry with weights_only=False (arbitrary code execution) is never repeated
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and "weights_only" not in ln
             and "safe_globals" not in ln and "trust" not in ln]
    detail = " ".join(lines)[:300]
    return WeightsError(f"cannot read weights file {p}: {type(e).__name__}: {detail}".strip())


def read_checkpoint(path: str | os.PathLike) -> Checkpoint:
    """Read a checkpoint file and find its state_dict, safely. Raises WeightsError."""
    p = Path(path)
    if not p.is_file():
        raise WeightsError(f"weights file not found: {p}")
    try:
        if p.suffix == ".safetensors":
            from safetensors.torch import load_file

            obj = load_file(str(p))
        else:
            with torch.serialization.safe_globals(_safe_extra_globals()):
                obj = torch.load(str(p), map_location="cpu", weights_only=True)
    except Exception as e:  # corrupt zip, pickle with disallowed globals, truncated file …
        raise _read_error(p, e) from None
    sd, entry = _locate(obj, p)
    if all(k.startswith("module.") for k in sd):  # DDP / DataParallel
        sd = {k[len("module."):]: v for k, v in sd.items()}
    arch = obj.get("arch") if isinstance(obj, dict) and isinstance(obj.get("arch"), str) else ""
    return Checkpoint(dict(sd), entry, arch)


def read_state_dict(path: str | os.PathLike) -> StateDict:
    """Read a checkpoint file into a flat {key: tensor} dict, safely. Raises WeightsError."""
    return read_checkpoint(path).state_dict


def _is_tensor_dict(d) -> bool:
    return isinstance(d, dict) and bool(d) and all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                                   for k, v in d.items())


_NOT_WEIGHTS = ("optim", "sched", "scaler", "callbacks", "loops")  # training state, never model weights


def _find(obj: dict, depth: int) -> tuple[StateDict, str] | None:
    """The preferred tensor mapping in ``obj``: known wrappers in WRAPPERS order, then any other key."""
    if depth > 3:
        return None
    keys = [k for k in WRAPPERS if k in obj] + [k for k in obj if k not in WRAPPERS
                                                and not any(s in str(k) for s in _NOT_WEIGHTS)]
    for key in keys:
        val = obj[key]
        if _is_tensor_dict(val):
            return val, str(key)
        if isinstance(val, dict):
            inner = _find(val, depth + 1)
            if inner is not None:
                return inner[0], f"{key}.{inner[1]}"
    return None


def _locate(obj, p: Path) -> tuple[StateDict, str]:
    if _is_tensor_dict(obj):
        return obj, ""
    found = _find(obj, 1) if isinstance(obj, dict) else None
    if found is None:
        what = (f"a dict with keys {sorted(map(str, obj))[:12]}" if isinstance(obj, dict)
                else f"a {type(obj).__name__}")
        raise WeightsError(f"{p} does not contain a state_dict (a mapping of names to tensors): it holds {what}; "
                           f"understood wrappers: a bare state_dict or one under {', '.join(WRAPPERS)} "
                           "(nested, with DDP 'module.' or Lightning attribute prefixes)")
    return found


# --------------------------------------------------------------------------- matching and loading

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


def _check_finite(sd: StateDict, source: str) -> None:
    for k, v in sd.items():
        if v.is_floating_point() and not bool(torch.isfinite(v).all()):
            kind = "NaN" if bool(torch.isnan(v).any()) else "Inf"
            raise WeightsError(f"weights in {source} hold {kind} values (first: tensor '{k}'); refusing to load "
                               "them (a diverged training run or a corrupt file?)")


def _prefix_views(sd: StateDict) -> Iterator[tuple[str, StateDict]]:
    """(stripped prefix, keys without it): the file as is, then each leading prefix all keys share, then
    each first-level prefix group (EMA-named groups first) — Lightning's ``model.`` / ``net.`` attributes."""
    yield "", sd
    prefix, cur = "", sd
    while len({k.split(".", 1)[0] for k in cur}) == 1 and all("." in k for k in cur):
        head = next(iter(cur)).split(".", 1)[0] + "."
        prefix, cur = prefix + head, {k[len(head):]: v for k, v in cur.items()}
        yield prefix, cur
    groups = sorted({k.split(".", 1)[0] for k in cur if "." in k}, key=lambda g: "ema" not in g.lower())
    if len(groups) > 1:
        for g in groups:
            head = g + "."
            yield prefix + head, {k[len(head):]: v for k, v in cur.items() if k.startswith(head)}


def _candidates(family: str, sd: StateDict) -> list[tuple[str, str, StateDict, int]]:
    """(prefix stripped, layout name, the view in our key names, file keys the view leaves out) for every
    prefix view × layout."""
    out = []
    for prefix, view in _prefix_views(sd):
        dropped = len(sd) - len(view)
        out.append((prefix, "mobexport", view, dropped))
        for lay in layouts(family):
            try:
                out.append((prefix, lay.name, lay.to_ours(view), dropped))
            except Exception:  # a mapping that does not apply to this file
                continue
    return out


@dataclass
class _Best:
    size: int
    prefix: str
    layout: str
    form: str
    diff: Diff
    model_sd: StateDict


def load_into(model: nn.Module, family: str, sd: StateDict, *, source: str = "state_dict", entry: str = "",
              arch: str = "") -> str:
    """Load ``sd`` into ``model`` (train form, as built) exactly, trying every prefix view × layout × form.

    Returns a description such as ``"timm (train form), from 'state_dict_ema'"``; a stripped key prefix and
    the reference conventions applied (e.g. torchvision MobileNetV3's BatchNorm eps 1e-3) are named too. If
    the only match is a deploy-form layout, the model is re-parameterized first (in place). Raises
    WeightsError naming the closest candidate's differences (or the head's class count); the model is
    untouched then, also when the file records an architecture (``arch``) that shares the matched layout's keys
    but not its numerics (timm's tf_* variants).
    """
    import copy

    from .passes.reparameterize import reparameterize

    _check_finite(sd, source)
    candidates = _candidates(family, sd)
    best: _Best | None = None
    for form in ("train", "deploy"):  # deploy: the re-parameterized twin's keys (a copy; the model is untouched)
        model_sd = model.state_dict() if form == "train" else reparameterize(copy.deepcopy(model)).state_dict()
        for prefix, name, cand, dropped in candidates:
            d = diff_state_dict(model_sd, cand)
            if d.ok:
                _refuse_variant(family, name, arch, source)
                if form == "deploy":
                    reparameterize(model)
                _strict_load(model, cand)
                return _described(model, family, name, form, entry, prefix)
            if best is None or d.size + dropped < best.size:  # a prefix group leaving keys out is no closer
                best = _Best(d.size + dropped, prefix, name, form, d, model_sd)
    raise _mismatch_error(family, best, sd, source)


def _refuse_variant(family: str, layout: str, arch: str, source: str) -> None:
    why = get_layout(family, layout).conventions.refusal(arch) if arch and layout != "mobexport" else None
    if why:
        raise WeightsError(f"weights in {source} are a {arch} checkpoint: its keys match the {layout} layout, but "
                           f"{why}; loading it would compute another function")


def _described(model: nn.Module, family: str, layout: str, form: str, entry: str, prefix: str) -> str:
    text = f"{layout} ({form} form)"
    if entry:
        text += f", from '{entry}'"
    if prefix:
        text += f", key prefix '{prefix}' stripped"
    if layout != "mobexport":
        applied = get_layout(family, layout).conventions.apply(model)
        if applied:
            text += f"; {applied}"
    return text


def _head_mismatch(best: _Best) -> str | None:
    """The class-count message when the only difference is the classifier's output size."""
    d = best.diff
    if d.missing or d.unexpected or not d.mis_shaped:
        return None
    keys = [k for k in best.model_sd if not k.endswith("num_batches_tracked")]
    head = keys[-1].rpartition(".")[0]  # every zoo model ends with its classifier's weight, bias
    head_keys = {k for k in keys if k.rpartition(".")[0] == head}
    if {k for k, _, _ in d.mis_shaped} != head_keys or any(a[1:] != b[1:] for _, a, b in d.mis_shaped):
        return None
    file_n, model_n = d.mis_shaped[0][1][0], d.mis_shaped[0][2][0]
    if any(a[0] != file_n for _, a, _ in d.mis_shaped):
        return None
    return (f"{head} has {file_n} classes in the file but the model was built with {model_n}: "
            f"pass --num-classes {file_n} (Python: num_classes={file_n})")


def _mismatch_error(family: str, best: _Best, sd: StateDict, source: str) -> WeightsError:
    where = f"closest layout: {best.layout} ({best.form} form)"
    if best.prefix:
        where += f" with key prefix '{best.prefix}' stripped"
    head = _head_mismatch(best)
    if head:
        return WeightsError(f"weights in {source} do not match this model ({where}): {head}")
    view = dict(_prefix_views(sd))[best.prefix]
    return WeightsError(f"weights in {source} do not match this model; {where}: "
                        f"{_in_file_naming(family, best.layout, best.diff, view, best.model_sd)}")


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
    ckpt = read_checkpoint(path)
    return load_into(model, family, ckpt.state_dict, source=str(path), entry=ckpt.entry, arch=ckpt.arch)
