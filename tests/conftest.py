"""Shared fixtures. Parameters come from the registries; see tests/known_failures.py for the one list of
expected failures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def assets() -> Path:
    from mobexport.exporter.assets import assets_dir

    d = assets_dir()
    if not (d / "images").is_dir() or not (d / "weights").is_dir():
        pytest.skip(f"assets not fetched at {d}: run `make assets`")
    return d


@pytest.fixture(autouse=True)
def _torch_threads():
    """Keep each xdist worker to one intra-op thread on the 2-core CI machine."""
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass
    yield


class ManifestSchemaError(AssertionError):
    """A manifest an export wrote during the tests does not follow benchmarks/schema/manifest.schema.json."""


VALIDATED_MANIFESTS: list[Path] = []  # folders whose manifest the hook below checked (tests/test_manifest_schema.py)


@pytest.fixture(scope="session", autouse=True)
def _manifests_follow_schema():
    """Every manifest.json an export writes during the tests is checked against manifest.schema.json (real
    jsonschema) before it is written: the schema the server and the apps rely on cannot drift from the writer."""
    from mobexport.benchmarks.schema import manifest_errors

    try:
        from mobexport.converters import manifest as manifest_module
    except ImportError:  # no test can export then (those fail on their own); the app/schema tests still run
        yield
        return
    write = manifest_module.write_manifest

    def write_checked(directory, manifest):
        errors = manifest_errors(json.loads(json.dumps(manifest, default=str)))  # as it lands on disk
        if errors:
            raise ManifestSchemaError(f"manifest for {Path(directory)} does not follow manifest.schema.json: "
                                      + "; ".join(errors[:5]))
        VALIDATED_MANIFESTS.append(Path(directory).resolve())
        return write(directory, manifest)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(manifest_module, "write_manifest", write_checked)
        yield


@pytest.fixture
def mount_tmpfs(tmp_path):
    """``mount_tmpfs(name, size)`` mounts a real tmpfs of ``size`` (e.g. "1m") at ``tmp_path/name`` (root only;
    skipped elsewhere) and unmounts it after the test: a tiny disk that fills, or one to remount read-only."""
    import os
    import subprocess

    mounted: list[Path] = []

    def mount(name: str, size: str) -> Path:
        if os.geteuid() != 0:
            pytest.skip("mounting a filesystem needs root")
        mnt = tmp_path / name
        mnt.mkdir()
        if subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mnt)],
                          capture_output=True).returncode:
            pytest.skip("cannot mount a tmpfs here")
        mounted.append(mnt)
        return mnt

    yield mount
    for mnt in mounted:
        subprocess.run(["umount", str(mnt)], check=True)
