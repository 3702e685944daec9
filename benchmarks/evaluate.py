"""Accuracy on the user's data: top-1 / top-5 of exported artifacts and of their float PyTorch model.

``evaluate(artifacts, data, ...)`` checks everything first (the data, every artifact's manifest, the class
names, the weights), then runs each image, preprocessed with the artifact's own manifest preprocessing, through
the artifact's runtime and through the float model rebuilt from the manifest, and returns one record per
artifact. Proportions carry a Wilson score 95% interval. Records go to the results store (table ``accuracy``,
linked to latency records by the artifact's sha256) only when every artifact has been evaluated, so a bad image
half-way stores nothing. An artifact with no runtime on this host is ``UNVALIDATED_NO_RUNTIME`` with the
reason, never a number; a random-weights artifact is evaluated but every record says its accuracy means nothing.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from mobexport.exporter.errors import UsageError, WeightsError
from mobexport.exporter.status import Status

from .eval_data import LabelledData, load_data

__all__ = ["CI_METHOD", "evaluate", "resolve_artifact", "wilson_interval"]

CI_METHOD = "Wilson score interval, 95%"
_Z95 = 1.959963984540054
TOPK = 5
Progress = Callable[[str, int, int], None]  # (artifact label, images done, total)


def wilson_interval(k: int, n: int, z: float = _Z95) -> tuple[float, float]:
    """Wilson score interval of the proportion ``k / n`` (95% for the default z)."""
    if n <= 0:
        raise ValueError("wilson_interval needs n > 0")
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z / denom * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def resolve_artifact(path: str | os.PathLike):
    """An ``Artifact`` from an export folder ``OUT/<model>/<target>/`` or the artifact file inside it."""
    from mobexport.converters import Artifact
    from mobexport.converters.manifest import MANIFEST_NAME

    p = Path(path).expanduser()
    if not p.exists():
        raise UsageError(f"artifact {p} does not exist")
    folder = p if p.is_dir() and (p / MANIFEST_NAME).is_file() else p.parent
    mpath = folder / MANIFEST_NAME
    if not mpath.is_file():
        raise UsageError(f"no {MANIFEST_NAME} next to {p}: pass an export folder OUT/<model>/<target>/")
    try:
        manifest = json.loads(mpath.read_text())
    except (OSError, ValueError) as e:
        raise UsageError(f"cannot read {mpath}: {e}") from None
    missing = [k for k in ("model", "target", "format", "artifact", "sha256", "preprocessing") if k not in manifest]
    if missing:
        raise UsageError(f"{mpath} lacks {', '.join(missing)}: not a mobexport manifest")
    art = folder / manifest["artifact"]
    if p != folder and p.resolve() != art.resolve():
        raise UsageError(f"{p} is not the artifact of {mpath} ({manifest['artifact']})")
    return Artifact(manifest["target"], art, mpath, manifest)


def preprocessing_of(manifest: dict[str, Any]):
    from mobexport.exporter.specs import Preprocessing

    pp = manifest["preprocessing"]
    crop = pp["crop"] if isinstance(pp["crop"], int) else tuple(pp["crop"])
    return Preprocessing(resize=int(pp["resize"]), crop=crop, mean=tuple(pp["mean"]), std=tuple(pp["std"]),
                         color=pp.get("color", "RGB"), interpolation=pp.get("interpolation", "bilinear"))


def random_note(manifest: dict[str, Any]) -> str | None:
    rw = manifest.get("random_weights")
    if isinstance(rw, dict):
        return f"random weights (seed {rw.get('seed')}): accuracy is not meaningful"
    from mobexport.exporter.source import is_random_tag

    if is_random_tag(manifest.get("weights")):
        return f"random weights ({manifest.get('weights')}): accuracy is not meaningful"
    return None


@dataclass
class _Job:
    artifact: Any  # converters.Artifact
    classes: list[int]
    pre: Any  # Preprocessing
    weights: str | None
    notes: list[str] = field(default_factory=list)

    @property
    def manifest(self) -> dict[str, Any]:
        return self.artifact.manifest

    @property
    def name(self) -> str:
        return f"{self.manifest['model']}/{self.manifest['target']}"


def _num_classes(manifest: dict[str, Any]) -> int | None:
    if manifest.get("num_classes"):
        return int(manifest["num_classes"])
    shape = (manifest.get("outputs") or [{}])[0].get("shape") or []
    return int(shape[-1]) if shape and isinstance(shape[-1], int) else None


def _weights_for(manifest: dict[str, Any], override: str | os.PathLike | None) -> str | None:
    """The float model's weights: ``override`` (checked against the manifest's sha256) or the manifest's file."""
    if override is None:
        return manifest.get("weights_path")
    from mobexport.converters.manifest import sha256_path

    p = Path(override).expanduser()
    if not p.is_file():
        raise WeightsError(f"--weights {p} is not a file")
    want = manifest.get("weights_sha256")
    if want and sha256_path(p) != want:
        raise WeightsError(f"--weights {p} is not the checkpoint {manifest['model']}/{manifest['target']} was "
                           f"exported with (sha256 {sha256_path(p)[:12]}…, manifest {want[:12]}…)")
    return str(p)


def _prepare(arts: list, data: LabelledData, weights, labels) -> list[_Job]:
    jobs = []
    for art in arts:
        m = art.manifest
        names = list(labels) if labels is not None else m.get("labels")
        n = _num_classes(m)
        if names and n is not None and len(names) != n:
            raise UsageError(f"{len(names)} class names for {m['model']}/{m['target']}, which has {n} classes")
        classes = data.class_indices(names or None, n)
        job = _Job(art, classes, preprocessing_of(m), _weights_for(m, weights))
        note = random_note(m)
        if note:
            job.notes.append(note)
        jobs.append(job)
    return jobs


def _float_model(job: _Job, model) -> tuple[Any, str]:
    """(the float PyTorch model or None, why not)."""
    if model is not None:
        return model.eval(), ""
    m = job.manifest
    src = m.get("model_source") or {"kind": "zoo", "name": m["model"]}
    if src.get("kind") == "module":
        return None, (f"float model not rebuilt: {src.get('class', 'an in-memory module')} was exported from Python; "
                      "pass model= to mobexport.evaluate")
    if "model_source" not in m and job.weights is None and random_note(m) is None:  # an older manifest
        return None, (f"float model not rebuilt: the manifest does not record the weights file of "
                      f"'{m.get('weights')}'; pass --weights FILE")
    if job.weights is not None and not Path(job.weights).is_file():
        return None, f"float model not rebuilt: weights file {job.weights} is missing; pass --weights FILE"
    from mobexport.converters.pipeline import model_from_manifest
    from mobexport.exporter.errors import MobexportError

    try:
        return model_from_manifest(m, weights=job.weights), ""
    except MobexportError:
        raise
    except Exception as e:  # the user's factory code failing: the artifact column still counts
        return None, f"float model not rebuilt: {type(e).__name__}: {e}"


def _runner(job: _Job) -> tuple[Any, Status, str]:
    from mobexport.converters import get_converter

    conv = get_converter(job.manifest["format"])
    avail = conv.runtime_available()
    if not avail.ok:
        return None, Status.UNVALIDATED_NO_RUNTIME, f"no {job.manifest['format']} runtime here: {avail.reason}"
    try:
        return conv.load(job.artifact), Status.OK, ""
    except Exception as e:  # the runtime's own exception types vary per backend
        return None, Status.LOAD_FAILED, f"cannot load {job.artifact.path}: {type(e).__name__}: {e}"


def _topk(logits: np.ndarray) -> np.ndarray:
    y = np.asarray(logits, dtype=np.float32).reshape(-1)
    k = min(TOPK, y.size)
    return np.argsort(-y, kind="stable")[:k]


def _scores(top: list[np.ndarray], classes: list[int], prefix: str) -> dict[str, float]:
    n = len(classes)
    out: dict[str, float] = {}
    for name, hit in (("top1", lambda t, c: t[0] == c), ("top5", lambda t, c: c in t)):
        k = sum(bool(hit(t, c)) for t, c in zip(top, classes, strict=True))
        lo, hi = wilson_interval(k, n)
        out.update({f"{prefix}_{name}": k / n, f"{prefix}_{name}_lo": lo, f"{prefix}_{name}_hi": hi})
    return out


@dataclass
class _Preds:
    artifact: list[np.ndarray] = field(default_factory=list)
    float: list[np.ndarray] = field(default_factory=list)


def _predict(job: _Job, data: LabelledData, runner, model, progress: Progress | None) -> _Preds:
    import torch

    from mobexport.exporter.preprocess import preprocess

    preds, total = _Preds(), len(data.samples)
    if progress:
        progress(job.name, 0, total)
    for i, s in enumerate(data.samples, 1):
        x = preprocess(s.path, job.pre)
        if runner is not None:
            preds.artifact.append(_topk(runner.run(x)))
        if model is not None:
            with torch.no_grad():
                preds.float.append(_topk(model(torch.from_numpy(x)).numpy()))
        if progress:
            progress(job.name, i, total)
    return preds


def _record(job: _Job, data: LabelledData, preds: _Preds, status: Status, float_status: Status) -> dict:
    from mobexport.converters import get_converter
    from mobexport.converters.manifest import base_tool_versions, git_commit

    m = job.manifest
    rec: dict[str, Any] = {
        "artifact_sha256": m["sha256"], "model": m["model"], "target": m["target"],
        "weights": str(m.get("weights", "unknown")), "artifact": str(job.artifact.path),
        "dataset_path": str(data.source), "dataset_fingerprint": data.fingerprint, "dataset_layout": data.layout,
        "n_images": len(data.samples), "status": status.value, "float_status": float_status.value,
        "ci_method": CI_METHOD, "random_weights": random_note(m) is not None,
        "tool_versions": {**base_tool_versions(), **get_converter(m["format"]).tool_versions()},
        "git_commit": git_commit(), "timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    for who in ("artifact", "float"):
        rec.update({f"{who}_{k}{b}": None for k in ("top1", "top5") for b in ("", "_lo", "_hi")})
    if preds.artifact:
        rec.update(_scores(preds.artifact, job.classes, "artifact"))
    if preds.float:
        rec.update(_scores(preds.float, job.classes, "float"))
    rec["agreement"] = (float(np.mean([a[0] == f[0] for a, f in zip(preds.artifact, preds.float, strict=True)]))
                        if preds.artifact and preds.float else None)
    rec["notes"] = "; ".join(job.notes) or None
    return rec


def _float_key(job: _Job, model) -> str:
    """Artifacts of the same float model, weights and preprocessing share one float pass over the data."""
    m = job.manifest
    who = (f"module {id(model)}" if model is not None else
           [m.get("model_source") or m["model"], job.weights, m.get("random_weights"), m.get("num_classes"),
            m.get("input_size")])
    return json.dumps([who, m["preprocessing"]], sort_keys=True, default=str)


def _evaluate_job(job: _Job, data: LabelledData, model, progress: Progress | None,
                  cache: dict[str, list[np.ndarray]]) -> dict[str, Any]:
    runner, status, reason = _runner(job)
    if reason:
        job.notes.append(reason)
    key = _float_key(job, model)
    cached = cache.get(key)
    fmodel, why = _float_model(job, model) if cached is None else (None, "")
    if why:
        job.notes.append(why)
    try:
        preds = _predict(job, data, runner, fmodel, progress)
    except UsageError:
        raise
    except Exception as e:  # a runtime failing half-way: report it, keep the float column honest
        job.notes.append(f"run failed: {type(e).__name__}: {e}")
        status, preds = Status.RUN_FAILED, _predict(job, data, None, fmodel, None)
    finally:
        if runner is not None:
            runner.close()
    if cached is not None:
        preds.float = cached
    elif fmodel is not None:
        cache[key] = preds.float
    return _record(job, data, preds, status, Status.OK if preds.float else Status.SKIPPED)


def evaluate(artifacts: Sequence[str | os.PathLike], data: str | os.PathLike, *, db: str | None = None,
             save: bool = True, weights: str | os.PathLike | None = None, limit: int | None = None,
             labels: Sequence[str] | None = None, model=None, progress: Progress | None = None) -> list[dict]:
    """Top-1 / top-5 (with Wilson 95% intervals) of each artifact and of its float model on ``data``.

    ``data``: an ImageFolder tree or a ``path,label`` CSV (see ``benchmarks/eval_data.py``). ``weights``
    overrides the manifest's weights file of the float model (checked against its sha256). ``labels`` replaces
    the manifest's class names; ``model`` is the float ``nn.Module`` for artifacts exported from an in-memory
    module. ``db``/``save``: store the records in the results database (default ./mobexport-results.db).
    Returns one record per artifact (the stored fields plus ``artifact``, ``ci_method``, ``random_weights``).
    """
    if isinstance(artifacts, str | os.PathLike):
        artifacts = [artifacts]
    if not artifacts:
        raise UsageError("no artifact given")
    arts = [resolve_artifact(a) for a in artifacts]
    loaded = load_data(data, limit)
    jobs = _prepare(arts, loaded, weights, labels)
    store = None
    if save:
        from mobexport.benchmarks.store import open_store

        store = open_store(db)  # opened (and migrated) before the long part: a bad --db fails first
    try:
        cache: dict[str, list[np.ndarray]] = {}
        records = [_evaluate_job(job, loaded, model, progress, cache) for job in jobs]
        if store is not None:
            from mobexport.benchmarks.store.accuracy import add_accuracy

            for rec in records:
                rec["id"] = add_accuracy(store, rec)
    finally:
        if store is not None:
            store.close()
    return records
