"""The one export pipeline, shared by every converter.

load → reparameterize → fold_batchnorm → equivalence_check → quantize → convert → validate → write_manifest

Each step is a named function of one explicit ``ExportState``. Any exception in a step that is not already a
``MobexportError`` becomes a ``ConversionError`` naming step, model and target. Artifacts are built in a
temporary directory next to ``OUT/<model>/<target>/`` and renamed into place only when every step finished;
a failed export leaves nothing behind. A fidelity MISMATCH is *not* an exception: the artifact is kept, the
manifest says ``"status": "MISMATCH"`` and ``ExportResult.exit_code`` is 1.
"""

from __future__ import annotations

import copy
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
from mobexport.exporter.status import Status

from . import get_converter, manifest, resolve_target
from .base import Artifact, Converter, ExportState

STEPS = ("load", "reparameterize", "fold_batchnorm", "equivalence_check", "quantize", "convert", "validate",
         "write_manifest")
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
                "timings_s": {k: round(v, 3) for k, v in self.timings.items()}, "exit_code": self.exit_code}


def export(model_name: str, target_id: str, *, weights: str | os.PathLike | None = None,
           out_dir: str | os.PathLike = "exports", calibration_dir: str | os.PathLike | None = None,
           options: dict[str, Any] | None = None,
           progress: Callable[[str], None] | None = None) -> ExportResult:
    """Export ``model_name`` to ``target_id`` under ``out_dir/<model>/<target>/``; validate; write the manifest.

    options: ``random_bn_seed`` (int: randomise BatchNorm statistics of random-weight models so validation
    is meaningful), ``seed`` (init seed, default 0), ``report`` (int8 per-layer sensitivity), ``tolerances``
    (validator overrides) and converter options (``nhwc``, ``dynamic_batch``, ``simplifier``, ...).
    """
    from mobexport.api import get_spec

    target = resolve_target(target_id)
    converter = get_converter(target.format)
    avail = converter.is_available()
    if not avail.ok:
        raise TargetUnavailableError(f"{target.id}: {avail.reason}", hint=avail.install_hint or None)
    spec = get_spec(model_name)
    opts = dict(options or {})
    if calibration_dir is not None and not target.needs_calibration:
        raise UsageError(f"--calibration applies to int8 targets only, not {target.id}")
    deps = {d: export(spec.name, d, weights=weights, out_dir=out_dir, options=opts, progress=progress)
            for d in target.depends_on}
    state = ExportState(model_name=spec.name, target=target, spec=spec,
                        weights=str(weights) if weights is not None else None, options=opts,
                        dependencies={d: Artifact(d, r.artifact, r.manifest_path, r.manifest)
                                      for d, r in deps.items()})
    state.options["calibration_dir"] = calibration_dir
    final = Path(out_dir) / spec.name / target.id
    with _staging(final) as staging:
        state.workdir = staging
        timings = _run_steps(state, converter, progress)
        _publish(staging, final)
    art = final / state.artifact.path.name
    return ExportResult(spec.name, target.id, state.status, art, final / manifest.MANIFEST_NAME,
                        state.artifact.manifest, timings)


def _run_steps(state: ExportState, converter: Converter, progress) -> dict[str, float]:
    timings: dict[str, float] = {}
    for name in STEPS:
        if progress:
            progress(f"{state.model_name} → {state.target.id}: {name}")
        t0 = time.perf_counter()
        try:
            _STEP_FUNCS[name](state, converter)
        except ConversionError as e:
            if e.step:
                raise
            raise _located(e, name, state) from e
        except MobexportError:
            raise
        except Exception as e:  # a backend's own exception: wrap it, naming where it happened
            raise ConversionError(f"{type(e).__name__}: {e}", step=name, model=state.model_name,
                                  target=state.target.id) from e
        timings[name] = time.perf_counter() - t0
    return timings


def _located(e: ConversionError, step: str, state: ExportState) -> ConversionError:
    """The same error, now naming step, model and target."""
    where = {"step": step, "model": state.model_name, "target": state.target.id, "hint": e.hint}
    if isinstance(e, UnsupportedOpError):
        return UnsupportedOpError(e.op, e.layer, backend=e.backend, **where)
    return ConversionError(e.message, **where)


# ---------------------------------------------------------------- staging / publishing

class _staging:
    """A temp dir next to ``final``; removed (with any parent dirs this export created) unless published."""

    def __init__(self, final: Path):
        self.final, self.created, self.path = final, [], None

    def __enter__(self) -> Path:
        missing = [p for p in [self.final.parent, *self.final.parent.parents] if not p.exists()]
        try:
            for p in reversed(missing):
                p.mkdir()
                self.created.append(p)
            _clear_dead_staging(self.final)
            self.path = Path(tempfile.mkdtemp(prefix=f".{self.final.name}.tmp-{os.getpid()}-",
                                              dir=self.final.parent))
        except OSError as e:
            self._cleanup()
            raise UsageError(f"cannot write to output directory {self.final.parent}: {e.strerror or e}",
                             hint="pass a writable --out DIR") from e
        return self.path

    def __exit__(self, *exc) -> None:
        self._cleanup()

    def _cleanup(self) -> None:
        if self.path is not None and self.path.exists():
            shutil.rmtree(self.path, ignore_errors=True)
        for p in reversed(self.created):
            try:
                p.rmdir()  # only if still empty (nothing was published into it)
            except OSError:
                pass


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

    from mobexport.api import create_model
    from mobexport.exporter.testing import randomize_batchnorm
    from mobexport.quantization.calibration import image_sets

    torch.manual_seed(int(state.options.get("seed", 0)))
    state.train_model = create_model(state.model_name, weights=state.weights).eval()
    if state.weights is None:
        state.weights_tag = "random"
        bn_seed = state.options.get("random_bn_seed")
        if bn_seed is not None:
            randomize_batchnorm(state.train_model, int(bn_seed))
            state.weights_tag = f"random(seed={state.options.get('seed', 0)},bn_seed={bn_seed})"
    else:
        state.weights_tag = f"{Path(state.weights).name}@sha256:{manifest.sha256_path(state.weights)[:12]}"
    g = torch.Generator().manual_seed(int(state.options.get("seed", 0)))
    state.example_input = torch.randn(1, *state.spec.input_size, generator=g)
    sets = image_sets(state.spec, state.options.get("calibration_dir"),
                      required=state.target.needs_calibration)
    state.calibration, state.holdout = sets.calibration, sets.holdout
    state.reports["images"] = sets.describe()


def step_reparameterize(state: ExportState, converter: Converter) -> None:
    from mobexport.exporter.passes.reparameterize import reparameterize

    state.model = reparameterize(copy.deepcopy(state.train_model)).eval()


def step_fold_batchnorm(state: ExportState, converter: Converter) -> None:
    from mobexport.exporter.passes.fold_batchnorm import bn_modules, fold_batchnorm

    fold_batchnorm(state.model)
    if bn_modules(state.model):  # fold_batchnorm checks this too; keep the pipeline's own postcondition
        raise InvariantError(f"BatchNorm left after folding: {bn_modules(state.model)[:5]}")


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


def step_quantize(state: ExportState, converter: Converter) -> None:
    if state.target.needs_calibration:
        converter.quantize(state)


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
    if state.options.get("report") and state.target.precision == "int8":
        from mobexport.quantization.sensitivity import layer_sensitivity

        state.reports["sensitivity"] = layer_sensitivity(state.model, state.calibration, state.holdout)


def step_write_manifest(state: ExportState, converter: Converter) -> None:
    path = state.artifact.path
    reports = {"equivalence": state.reports.get("equivalence"), "images": state.reports.get("images"),
               "structure_problems": state.reports.get("structure"),
               "sensitivity": state.reports.get("sensitivity")}
    m = manifest.build_manifest(state.reports["describe"], path, state.reports["fidelity"], state.status.value,
                                converter.manifest_extras(state, path), reports)
    state.artifact.manifest = m
    state.artifact.manifest_path = manifest.write_manifest(state.workdir, m)


_STEP_FUNCS: dict[str, Callable[[ExportState, Converter], None]] = {
    name: globals()[f"step_{name}"] for name in STEPS
}
