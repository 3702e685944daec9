"""Shared fixtures. Parameters come from the registries; see tests/known_failures.py for the one list of
expected failures."""

from __future__ import annotations

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
