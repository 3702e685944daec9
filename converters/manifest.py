"""manifest.json: everything an app, a harness or a person needs to use an artifact — and to trust it.

The same fields (minus the artifact's own hash and the fidelity report, which depend on the final file) are
embedded in the artifact where the format allows (ONNX metadata_props, TFLite metadata buffer, Core ML
user_defined_metadata) through ``Converter.embed_metadata``.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

MANIFEST_NAME = "manifest.json"
MANIFEST_VERSION = 1
_ROOT = Path(__file__).resolve().parents[1]


def sha256_path(path: str | os.PathLike) -> str:
    """sha256 of a file, or of a bundle directory (relative paths and contents, in sorted order)."""
    p = Path(path)
    h = hashlib.sha256()
    files = [p] if p.is_file() else sorted(f for f in p.rglob("*") if f.is_file())
    for f in files:
        if p.is_dir():
            h.update(str(f.relative_to(p)).encode() + b"\0")
        with open(f, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def path_size(path: str | os.PathLike) -> int:
    p = Path(path)
    return p.stat().st_size if p.is_file() else sum(f.stat().st_size for f in p.rglob("*") if f.is_file())


def git_commit() -> str | None:
    try:
        r = subprocess.run(["git", "-C", str(_ROOT), "rev-parse", "HEAD"], capture_output=True, text=True,
                           timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return r.stdout.strip() or None if r.returncode == 0 else None


def base_tool_versions() -> dict[str, str]:
    import numpy
    import torch

    from mobexport import __version__

    return {"mobexport": __version__, "python": platform.python_version(), "torch": torch.__version__,
            "numpy": numpy.__version__}


def default_io(state) -> dict[str, Any]:
    c, h, w = state.spec.input_size
    nhwc = bool(state.options.get("nhwc"))
    return {"inputs": [{"name": "input", "shape": [1, h, w, c] if nhwc else [1, c, h, w], "dtype": "float32",
                        "layout": "NHWC" if nhwc else "NCHW"}],
            "outputs": [{"name": "logits", "shape": [1, None], "dtype": "float32"}]}


def describe(state, converter) -> dict[str, Any]:
    """The part of the manifest known before validation (also what gets embedded in the artifact)."""
    pp = state.spec.preprocessing
    src = state.source.to_dict() if state.source is not None else {"kind": "zoo", "name": state.model_name}
    return {
        "manifest_version": MANIFEST_VERSION,
        "model": state.model_name,
        "family": state.spec.family,
        "model_source": src,
        "target": state.target.id,
        "format": state.target.format,
        "scheme": state.target.scheme,
        "weights": state.weights_tag,
        "random_weights": random_weights(state),
        "num_classes": state.spec.num_classes or None,
        "input_size": list(state.spec.input_size),
        "labels": state.labels,
        "input": state.io["inputs"][0],
        "inputs": state.io["inputs"],
        "outputs": state.io["outputs"],
        "output_names": [o["name"] for o in state.io["outputs"]],
        "preprocessing": {"resize": pp.resize, "crop": pp.crop if isinstance(pp.crop, int) else list(pp.crop), "mean": list(pp.mean), "std": list(pp.std),
                          "color": pp.color, "interpolation": pp.interpolation, "scale": 1 / 255},
        "tool_versions": {**base_tool_versions(), **converter.tool_versions()},
        "git_commit": git_commit(),
    }


def random_weights(state) -> dict[str, Any] | None:
    """{"seed", "note"} when the weights are the zoo's deterministic random ones, else None."""
    from mobexport.exporter.source import random_weights_tag

    seed = state.reports.get("random_seed")  # set by the load step for a zoo model without a checkpoint
    return None if seed is None else {"seed": seed, "note": random_weights_tag(seed)}


def user_fields(state) -> dict[str, Any]:
    """Manifest-only fields (not embedded in the artifact: local paths stay on this host)."""
    w = state.weights
    return {"weights_path": str(Path(w).resolve()) if w else None,
            "weights_sha256": state.reports.get("weights_sha256"),  # hashed once, by the load step
            "weights_loaded_as": state.reports.get("loaded_from"),
            "passes": state.reports.get("passes")}


def embeddable(desc: dict[str, Any]) -> dict[str, str]:
    """Flat string→string metadata for formats that store key/value pairs."""
    return {f"mobexport.{k}": v if isinstance(v, str) else json.dumps(v, sort_keys=True)
            for k, v in desc.items() if v is not None}


def build_manifest(desc: dict[str, Any], artifact_path: Path, fidelity: dict[str, Any], status: str,
                   extras: dict[str, Any], reports: dict[str, Any]) -> dict[str, Any]:
    m = dict(desc)
    m.update({
        "artifact": Path(artifact_path).name,
        "sha256": sha256_path(artifact_path),
        "size_bytes": path_size(artifact_path),
        "status": status,
        "fidelity": fidelity,
        "timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    })
    m.update({k: v for k, v in reports.items() if v})
    m.update(extras)
    return m


def write_manifest(directory: Path, manifest: dict[str, Any]) -> Path:
    path = Path(directory) / MANIFEST_NAME
    path.write_text(json.dumps(manifest, indent=2, sort_keys=False, default=str) + "\n")
    return path


def read_manifest(path: str | os.PathLike) -> dict[str, Any]:
    p = Path(path)
    return json.loads((p / MANIFEST_NAME if p.is_dir() else p).read_text())
