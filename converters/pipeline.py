"""The one export pipeline, shared by every converter.

load → reparameterize → fold_batchnorm → equivalence_check → convert → validate → write_manifest (``STEPS``)

Options (``GeneralOptions`` and the converter's typed ``Options``) are checked when the export starts, before any
work. Each step is a named function of one explicit ``ExportState``; converters quantize inside ``convert``. Any
exception in a step that is not already a ``MobexportError`` becomes a ``ConversionError`` naming step, model and
target. Artifacts are built in a temporary directory next to ``OUT/<model>/<target>/`` and renamed into place
only when every step finished; a failed export leaves nothing behind. A fidelity MISMATCH is *not* an exception:
the artifact is kept, the manifest says ``"status": "MISMATCH"`` and ``ExportResult.exit_code`` is 1.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mobexport.exporter.errors import (
    ConversionError,
    InvariantError,
    MobexportError,
    TargetUnavailableError,
    UnsupportedOpError,
    UsageError,
)
from mobexport.exporter.source import check_labels
from mobexport.exporter.status import Status

from . import get_converter, manifest, resolve_target
from .base import Artifact, Converter, ExportState, GeneralOptions, parse_options

EQUIVALENCE_RTOL = 1e-4  # train-form vs deploy-form, max|Δ| / max|y|
EXIT_CODES = {Status.OK: 0, Status.UNVALIDATED_NO_RUNTIME: 0}  # every other status → 1


@dataclass
class ExportResult:
    model: str
    target: str
    status: Status
    artifact: Path
    manifest_path: Path
    manifest: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def fidelity(self) -> dict[str, Any]:
        return self.manifest.get("fidelity", {})

    @property
    def exit_code(self) -> int:
        return EXIT_CODES.get(self.status, 1)

    def to_json(self) -> dict[str, Any]:
        return {"model": self.model, "target": self.target, "status": self.status.value,
                "artifact": str(self.artifact), "manifest": str(self.manifest_path),
                "weights": self.manifest.get("weights"), "sha256": self.manifest.get("sha256"),
                "size_bytes": self.manifest.get("size_bytes"), "fidelity": self.fidelity,
                "timings_s": {k: round(v, 3) for k, v in self.timings.items()}, "exit_code": self.exit_code,
                "performance_notes": self.manifest.get("performance_notes", [])}


def export(model: Any, target_id: str, *, weights: str | os.PathLike | None = None,
           out_dir: str | os.PathLike = "exports", calibration_dir: str | os.PathLike | None = None,
           options: dict[str, Any] | None = None, progress: Callable[[str], None] | None = None,
           num_classes: int | None = None, input_size: Any = None, input_shape: tuple[int, ...] | None = None,
           labels: list[str] | str | os.PathLike | None = None, preprocessing: Any = None,
           name: str | None = None, built: dict[str, ExportResult] | None = None) -> ExportResult:
    """Export ``model`` to ``target_id`` under ``out_dir/<name>/<target>/``; validate; write the manifest.

    ``model`` is a zoo name (canonical or timm alias), a factory reference (``path/to/file.py:fn`` or
    ``package.module:fn``: runs that code) or any ``torch.nn.Module`` (exported from a copy; the caller's object
    is left as it is). ``num_classes`` / ``input_size`` (``S``, ``(H, W)`` or ``"HxW"``) shape a zoo model;
    ``input_shape=(1, 3, H, W)`` gives a user module's input; ``labels`` is a list of class names or a file
    with one a line; ``preprocessing`` (a ``Preprocessing``, or a dict of the fields that differ from the default)
    describes a user module's input pixels (default:
    ImageNet mean/std, RGB, resize by 256/224 then centre crop).

    options: the fields of ``GeneralOptions`` (``seed``, ``random_bn_seed``, ``require_validation``, ``report``,
    ``range_search``, ``tolerances``, ...) and of the converter's ``Options`` (``simplifier``, ``nhwc``, ...);
    an unknown key or a bad value is a UsageError before any work.

    built: results of exports made earlier in the same run (filled in here): an export with the same model,
    target, options and arguments is not repeated but answered from it, e.g. ``export --to all`` builds the
    onnx-fp32 artifact once and both TensorRT targets are built from that one.
    """
    target = resolve_target(target_id)
    converter = get_converter(target.format)
    general, own = parse_options(converter, target, options)
    key = _build_key(model, target.id, general, own, weights, out_dir, calibration_dir, num_classes, input_size,
                     input_shape, labels, preprocessing, name)
    if built is not None and key in built:
        return built[key]
    avail = converter.is_available()
    if not avail.ok:
        raise TargetUnavailableError(f"{target.id}: {avail.reason}", hint=avail.install_hint or None)
    if general.require_validation and not (rt := converter.runtime_available()).ok:
        raise TargetUnavailableError(f"--require-validation: cannot validate {target.id} here: {rt.reason}",
                                     hint=rt.install_hint or None)
    source, spec = _resolve_model(model, num_classes=num_classes, input_size=input_size, input_shape=input_shape,
                                  preprocessing=preprocessing, name=name)
    if calibration_dir is not None and not target.needs_calibration:
        raise UsageError(f"--calibration applies to int8 targets only, not {target.id}")
    label_list = _labels(labels)
    if spec.family != CUSTOM:
        check_labels(label_list, spec.num_classes, spec.name)
    if weights is not None and not Path(weights).is_file():
        raise UsageError(f"weights file not found: {weights}")
    # the int8-only options stay with this target (tensorrt-w8a8's fidelity budget is not onnx-fp32's)
    dep_opts = {**dataclasses.asdict(general), "report": False, "range_search": False, "min_agreement": None,
                "min_sqnr": None, "full_integer": False}
    deps = {d: export(model, d, weights=weights, out_dir=out_dir, options=dep_opts, progress=progress,
                      num_classes=num_classes, input_size=input_size, input_shape=input_shape,
                      labels=labels, preprocessing=preprocessing, name=name, built=built)
            for d in target.depends_on}
    state = ExportState(model_name=spec.name, target=target, spec=spec,
                        weights=str(weights) if weights is not None else None,
                        options={**dataclasses.asdict(general), **dataclasses.asdict(own),
                                 "calibration_dir": calibration_dir},
                        dependencies={d: Artifact(d, r.artifact, r.manifest_path, r.manifest)
                                      for d, r in deps.items()},
                        source=source, labels=label_list)
    final = Path(out_dir) / spec.name / target.id
    with _staging(final) as staging:
        state.workdir = staging
        timings = _run_steps(state, converter, progress)
        _publish(staging, final)
    art = final / state.artifact.path.name
    result = ExportResult(spec.name, target.id, state.status, art, final / manifest.MANIFEST_NAME,
                          state.artifact.manifest, timings)
    if built is not None:
        built[key] = result
    return result


def _build_key(model: Any, target_id: str, general, own, *args: Any) -> str:
    """What decides an export's artifact: the model (a name/reference, or the module object itself), target,
    options and arguments."""
    who = model if isinstance(model, str) else f"object {id(model)}"
    return repr((who, target_id, sorted(dataclasses.asdict(general).items()), sorted(dataclasses.asdict(own).items()),
                 [str(a) if isinstance(a, os.PathLike) else a for a in args]))


# ---------------------------------------------------------------- the user's model

CUSTOM = "custom"  # the family of every model that is not from the zoo


def _resolve_model(model: Any, *, num_classes, input_size, input_shape, preprocessing, name):
    """(ModelSource, ModelSpec) for a zoo name, a factory reference or an nn.Module."""
    from mobexport.exporter.source import ModelSource, check_name, is_factory_ref, load_factory, module_source

    if isinstance(model, str) and not is_factory_ref(model):
        from mobexport.api import get_spec

        if input_shape is not None:
            input_size = _size_from_shape(input_shape)
        if preprocessing is not None:
            raise UsageError("preprocessing= is for user modules; a zoo model keeps its spec's preprocessing")
        spec = get_spec(model, num_classes=num_classes, input_size=input_size)
        source = ModelSource("zoo", spec.name)
        if name is not None:
            spec = dataclasses.replace(spec, name=check_name(name))
        return source, spec
    if isinstance(model, str):
        fn, source = load_factory(model)
        source.factory = fn
        source.kwargs = {"num_classes": num_classes} if num_classes is not None else {}
    elif _is_module(model):
        source = module_source(model)
    else:
        raise UsageError(f"export() takes a zoo name, a factory reference or a torch.nn.Module, "
                         f"not {type(model).__name__}")
    if num_classes is not None and source.kind == "module":
        raise UsageError("num_classes= is for zoo models and factories; an nn.Module already has its head")
    shape = input_shape if input_shape is not None else _shape_from_size(input_size)
    spec = custom_spec(check_name(name or source.name), shape, preprocessing)
    return source, spec


def _is_module(obj: Any) -> bool:
    import torch

    return isinstance(obj, torch.nn.Module)


def _size_from_shape(shape) -> tuple[int, int]:
    dims = tuple(shape)
    if len(dims) not in (3, 4) or (len(dims) == 4 and dims[0] != 1) or dims[-3] != 3:
        raise UsageError(f"input_shape must be (1, 3, H, W) or (3, H, W), got {dims}")
    return int(dims[-2]), int(dims[-1])


def _shape_from_size(size) -> tuple[int, int, int, int]:
    from mobexport.exporter.specs import parse_input_size

    if size is None:
        return (1, 3, 224, 224)
    h, w = parse_input_size(size) if isinstance(size, str) else ((size, size) if isinstance(size, int) else size)
    return (1, 3, int(h), int(w))


def custom_spec(name: str, input_shape, preprocessing=None):
    """A ModelSpec for a user module: its input shape and preprocessing; nothing published."""
    from mobexport.exporter.specs import ModelSpec, Preprocessing

    h, w = _size_from_shape(input_shape)
    if min(h, w) < 8 or max(h, w) > 4096:
        raise UsageError(f"input size {h}x{w} out of range (8 to 4096 pixels a side)")
    if preprocessing is None or isinstance(preprocessing, dict):  # a dict overrides fields of the default
        default = {"resize": round(min(h, w) * 256 / 224), "crop": h if h == w else (h, w)}
        preprocessing = Preprocessing(**{**default, **(preprocessing or {})})
    if not isinstance(preprocessing, Preprocessing):
        raise UsageError(f"preprocessing must be a Preprocessing or a dict, not {type(preprocessing).__name__}")
    return ModelSpec(name=name, family=CUSTOM, input_size=(3, h, w), preprocessing=preprocessing,
                     num_classes=0, notes="user model")


def _labels(labels) -> list[str] | None:
    from mobexport.exporter.source import read_labels

    if labels is None:
        return None
    if isinstance(labels, (str, os.PathLike)):
        return read_labels(labels)
    out = [str(x) for x in labels]
    if not out or any(not x.strip() for x in out):
        raise UsageError("labels must be a non-empty list of non-empty class names")
    return out


def model_from_manifest(m: dict[str, Any], weights: str | os.PathLike | None = None):
    """The float train-form model an artifact was exported from, rebuilt from its manifest (eval mode).

    ``weights`` overrides the manifest's ``weights_path``; it must have the recorded sha256 when one is
    recorded. An artifact exported from an in-memory module cannot be rebuilt (UsageError)."""
    src = m.get("model_source") or {"kind": "zoo", "name": m.get("model")}
    path = weights if weights is not None else m.get("weights_path")
    if path is not None:
        want = m.get("weights_sha256")
        if want and manifest.sha256_path(path) != want:
            raise UsageError(f"weights {path} differ from the ones the artifact was exported with "
                             f"(sha256 {want[:12]}…)")
    if src.get("kind") == "zoo":
        size = m.get("input_size")
        rnd = m.get("random_weights") if path is None else None
        return build_zoo_model(src["name"], weights=path, num_classes=m.get("num_classes") or 1000,
                               input_size=tuple(size[1:]) if size else None,
                               seed=int(rnd["seed"]) if rnd else None)[0]
    if src.get("kind") == "factory":
        from mobexport.exporter.source import call_factory, load_factory

        fn, source = load_factory(src["ref"])
        model = call_factory(fn, source, src.get("kwargs", {}).get("num_classes"))
        if path is not None:
            _load_user_weights(model, path)
        return model.float().eval()
    raise UsageError(f"{m.get('model')}: exported from an in-memory module ({src.get('class', '?')}); "
                     "pass that module to evaluate it in PyTorch")


def build_zoo_model(name: str, *, weights=None, weights_sha256: str | None = None, num_classes: int = 1000,
                    input_size=None, seed: int | None = 0):
    """(train-form zoo model in eval mode, weights tag). Without ``weights`` the model gets the deterministic
    random weights of ``seed``: seeded init, then randomized BatchNorm statistics (at init they are 0/1 and the
    outputs degenerate), so the same seed always gives the same model. ``weights_sha256``: the checkpoint's
    hash when the caller has it already (else it is computed for the tag)."""
    import torch

    from mobexport.api import create_model
    from mobexport.exporter.source import checkpoint_tag, random_weights_tag
    from mobexport.exporter.testing import randomize_batchnorm

    seed = 0 if seed is None else int(seed)
    torch.manual_seed(seed)
    model = create_model(name, weights=weights, num_classes=num_classes, input_size=input_size).eval()
    if weights is not None:
        return model, checkpoint_tag(weights, weights_sha256 or manifest.sha256_path(weights))
    randomize_batchnorm(model, seed)
    return model, random_weights_tag(seed)


def _load_user_weights(model, path) -> str:
    from mobexport.exporter.weights import load_weights

    return load_weights(model, CUSTOM, path)  # the description names the entry used (e.g. 'state_dict_ema')


def _run_steps(state: ExportState, converter: Converter, progress) -> dict[str, float]:
    timings: dict[str, float] = {}
    for name, step in STEPS:
        if progress:
            progress(f"{state.model_name} → {state.target.id}: {name}")
        t0 = time.perf_counter()
        try:
            step(state, converter)
        except ConversionError as e:
            _raise_if_disk_full(e, name, state)
            if e.step:
                raise
            raise _located(e, name, state) from e
        except MobexportError:
            raise
        except Exception as e:  # a backend's own exception: wrap it, naming where it happened
            _raise_if_disk_full(e, name, state)
            raise ConversionError(f"{type(e).__name__}: {e}", step=name, model=state.model_name,
                                  target=state.target.id) from e
        timings[name] = time.perf_counter() - t0
    return timings


def _raise_if_disk_full(e: BaseException, step: str, state: ExportState) -> None:
    """A full disk (ENOSPC or EDQUOT anywhere in the exception's chain) is the user's to fix, not a conversion
    failure: UsageError (exit 2) naming the output folder and the space left on it."""
    import errno

    seen: set[int] = set()
    cause: BaseException | None = e
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, OSError) and cause.errno in (errno.ENOSPC, errno.EDQUOT):
            out = state.workdir.parent.parent if state.workdir else Path.cwd()  # staging is OUT/model/.target.tmp-*
            free = shutil.disk_usage(out).free / 2 ** 20
            raise UsageError(f"no space left on the disk of {out} while writing {state.model_name} → "
                             f"{state.target.id} ({step} step): {free:.1f} MiB free",
                             hint="free some space, or pass --out DIR on a disk with room") from e
        cause = cause.__cause__ or cause.__context__


def _located(e: ConversionError, step: str, state: ExportState) -> ConversionError:
    """The same error, now naming step, model and target."""
    where = {"step": step, "model": state.model_name, "target": state.target.id, "hint": e.hint}
    if isinstance(e, UnsupportedOpError):
        return UnsupportedOpError(e.op, e.layer, backend=e.backend, **where)
    return ConversionError(e.message, **where)


# ---------------------------------------------------------------- staging / publishing

@contextlib.contextmanager
def _staging(final: Path):
    """A temp dir next to ``final``; removed (with any parent dirs this export created) unless published."""
    created: list[Path] = []
    path = None
    try:
        try:
            for p in reversed([p for p in [final.parent, *final.parent.parents] if not p.exists()]):
                p.mkdir()
                created.append(p)
            _clear_dead_staging(final)
            path = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-{os.getpid()}-", dir=final.parent))
        except OSError as e:
            raise UsageError(f"cannot write to output directory {final.parent}: {e.strerror or e}",
                             hint="pass a writable --out DIR") from e
        yield path
    finally:
        if path is not None and path.exists():
            shutil.rmtree(path, ignore_errors=True)
        for p in reversed(created):
            with contextlib.suppress(OSError):
                p.rmdir()  # only if still empty (nothing was published into it)


def _clear_dead_staging(final: Path) -> None:
    """Remove the staging (``.T.tmp-PID-*``) and replaced (``.T.old-PID``) folders of ``final`` left by exports
    that were killed before their cleanup ran: only those whose process is gone; a running export's stay."""
    import re

    own = re.compile(rf"\.{re.escape(final.name)}\.(?:tmp|old)-(\d+)(?:-.*)?")
    for d in final.parent.iterdir():
        m = own.fullmatch(d.name)
        if m and d.is_dir() and not d.is_symlink() and not _process_alive(int(m.group(1))):
            shutil.rmtree(d, ignore_errors=True)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True  # another user's process (or a number the OS cannot check): keep its folder
    return True


def _publish(staging: Path, final: Path) -> None:
    staging.chmod(0o755)  # mkdtemp makes it 0700
    old = None
    if final.exists():
        old = final.with_name(f".{final.name}.old-{os.getpid()}")
        final.rename(old)
    staging.rename(final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


# ---------------------------------------------------------------- the steps

def step_load(state: ExportState, converter: Converter) -> None:
    import torch

    from mobexport.quantization.calibration import image_sets

    seed = GeneralOptions.of(state).seed
    state.train_model = _load_model(state, seed)
    g = torch.Generator().manual_seed(seed)
    state.example_input = torch.randn(1, *state.spec.input_size, generator=g)
    if state.spec.family == CUSTOM:
        _fill_custom_spec(state)
    sets = image_sets(state.spec, state.options.get("calibration_dir"),
                      required=state.target.needs_calibration)
    state.calibration, state.holdout = sets.calibration, sets.holdout
    state.reports["images"] = sets.describe()


def _load_model(state: ExportState, seed: int):
    """The train-form model of ``state.source`` with its weights; sets ``state.weights_tag``."""
    from mobexport.exporter.source import call_factory, checkpoint_tag, state_dict_sha256

    src = state.source
    sha = state.reports["weights_sha256"] = manifest.sha256_path(state.weights) if state.weights else None
    if src is None or src.kind == "zoo":
        bn_seed = GeneralOptions.of(state).random_bn_seed
        random_seed = seed if bn_seed is None else int(bn_seed)
        if state.weights is None:
            state.reports["random_seed"] = random_seed
        model, state.weights_tag = build_zoo_model(
            src.name if src else state.spec.name, weights=state.weights, weights_sha256=sha,
            num_classes=state.spec.num_classes, input_size=state.spec.input_size[1:], seed=random_seed)
        return model
    model = call_factory(src.factory, src, src.kwargs.get("num_classes")) if src.kind == "factory" \
        else copy.deepcopy(src.module)
    model = model.cpu().float().eval()
    if state.weights is not None:
        state.reports["loaded_from"] = _load_user_weights(model, state.weights)
        state.weights_tag = checkpoint_tag(state.weights, sha)
    elif src.kind == "factory":
        state.weights_tag = f"as built by {src.ref} (no checkpoint)"
    else:
        state.weights_tag = f"in-memory {src.cls}@sha256:{state_dict_sha256(model)[:12]}"
    return model


def _fill_custom_spec(state: ExportState) -> None:
    """A user module's class count is what it outputs for the example input; the labels must match it."""
    import torch

    try:
        with torch.no_grad():
            out = state.train_model(state.example_input)
    except Exception as e:  # the user's forward failed on the declared input
        raise UsageError(f"{state.model_name}: forward on an input of shape {tuple(state.example_input.shape)} "
                         f"failed: {type(e).__name__}: {e}", hint="pass the model's input shape "
                         "(--input-size HxW / input_shape=(1, 3, H, W))") from e
    if not isinstance(out, torch.Tensor):
        raise UsageError(f"{state.model_name}: the model returns {type(out).__name__}; export needs a module "
                         "that returns one tensor (wrap it to select the output)")
    n = int(out.shape[-1]) if out.ndim == 2 else 0
    state.spec = dataclasses.replace(state.spec, num_classes=n)
    if state.labels is not None:
        if n == 0:
            raise UsageError(f"{state.model_name}: labels need (1, classes) outputs, got {tuple(out.shape)}")
        check_labels(state.labels, n, state.model_name)


def step_reparameterize(state: ExportState, converter: Converter) -> None:
    from mobexport.exporter.passes.reparameterize import reparameterize

    report: dict[str, Any] = {}
    state.model = reparameterize(copy.deepcopy(state.train_model), report=report).eval()
    state.reports["passes"] = report


def step_fold_batchnorm(state: ExportState, converter: Converter) -> None:
    from mobexport.exporter.passes.fold_batchnorm import fold_batchnorm

    fold_batchnorm(state.model)  # checks its own postcondition (no BatchNorm left): InvariantError otherwise


def step_equivalence_check(state: ExportState, converter: Converter) -> None:
    import torch

    from mobexport.exporter.testing import rel_max_error

    with torch.no_grad():
        ref = state.train_model(state.example_input)
        out = state.model(state.example_input)
    err = rel_max_error(ref, out)
    state.reports["equivalence"] = {"train_vs_deploy_rel_max_error": err, "rtol": EQUIVALENCE_RTOL}
    if not err <= EQUIVALENCE_RTOL:
        raise InvariantError(f"{state.model_name}: deploy form differs from train form: rel max error "
                             f"{err:.3g} > {EQUIVALENCE_RTOL:g} (re-parameterization bug)")
    state.reference_output = out
    state.train_model = None  # not needed any more; free memory


def step_convert(state: ExportState, converter: Converter) -> None:
    path = state.workdir / converter.artifact_filename(state)
    path = Path(converter.convert(state, path))
    if not state.io:
        state.io = manifest.default_io(state)
    state.artifact = Artifact(state.target.id, path)
    state.reports["structure"] = converter.check_structure(path, state)
    state.reports["describe"] = manifest.describe(state, converter)
    converter.embed_metadata(path, manifest.embeddable(state.reports["describe"]))


def step_validate(state: ExportState, converter: Converter) -> None:
    from mobexport.quantization.validate import FidelityReport, unvalidated, validate

    rt = converter.runtime_available()
    if not rt.ok:
        report = unvalidated(state, f"no {converter.runtime_name or state.target.format} runtime: {rt.reason}")
    else:
        try:
            runner = converter.load(state.artifact)
        except Exception as e:  # the runtime refused the artifact
            report = FidelityReport(state.target.precision, Status.LOAD_FAILED,
                                    failures=[f"load failed: {type(e).__name__}: {e}"])
        else:
            try:
                report = validate(runner, state)
            finally:
                runner.close()
    state.status = report.status
    state.reports["fidelity"] = report.to_dict()
    if GeneralOptions.of(state).report:  # int8 targets only (GeneralOptions.check)
        from mobexport.quantization.sensitivity import layer_sensitivity

        state.reports["sensitivity"] = layer_sensitivity(state.model, state.calibration, state.holdout)


def step_write_manifest(state: ExportState, converter: Converter) -> None:
    path = state.artifact.path
    reports = {"equivalence": state.reports.get("equivalence"), "images": state.reports.get("images"),
               "structure_problems": state.reports.get("structure"),
               "sensitivity": state.reports.get("sensitivity"), **manifest.user_fields(state)}
    m = manifest.build_manifest(state.reports["describe"], path, state.reports["fidelity"], state.status.value,
                                converter.manifest_extras(state, path), reports)
    state.artifact.manifest = m
    state.artifact.manifest_path = manifest.write_manifest(state.workdir, m)


STEPS: tuple[tuple[str, Callable[[ExportState, Converter], None]], ...] = (
    ("load", step_load),
    ("reparameterize", step_reparameterize),
    ("fold_batchnorm", step_fold_batchnorm),
    ("equivalence_check", step_equivalence_check),
    ("convert", step_convert),
    ("validate", step_validate),
    ("write_manifest", step_write_manifest),
)
