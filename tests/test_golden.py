"""Golden outputs: every reference key layout the loader accepts computes what the reference implementation
computes.

Round trips (ours → their keys → ours) cannot catch a convention the keys do not show — a BatchNorm eps, a
padding rule, an activation variant. Each fixture in tests/golden/ holds the logits that the reference code
itself (torchvision, timm, the official repositories; see scripts/make_golden.py for versions and commits)
computed in float64 with deterministic weights that include randomized BatchNorm statistics (running_var over
[1e-4, 2], so eps matters). Here the identical reference-layout state_dict is regenerated from the recorded
(key, shape) list, loaded through ``create_model(name, weights=file)`` and run in float64, as loaded and after
``reparameterize`` (folded in float64); no reference code is needed.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

import mobexport
from mobexport.exporter import weights as W
from tests.golden.weights import generate, inputs

GOLDEN = Path(__file__).parent / "golden"
FIXTURES = sorted(GOLDEN.glob("*.json"))
REL_TOL = 1e-9  # float64 on both sides; observed differences are float64 round-off
# ...as the model amplifies it: a convention error (BatchNorm eps, padding, activation variant) moves the logits by
# 1e-4 or more, float64 round-off by eps x the model's amplification, which differs by CPU and kernel (ECA-NFNet with
# these random weights turns a 1e-15 relative change of its input into ~2e-9 at its logits; ResNet-18 into ~2e-15).
ROUNDOFF_MARGIN = 20  # allowed error: max(REL_TOL, this x the measured amplification of a 1e-15 input change)

# Registered layouts without a golden fixture, each with its reason (the guard below fails on any other).
EXCLUDED: dict[tuple[str, str], str] = {}  # none today: every reference implementation ran (make_golden.py)


def _load(path: Path) -> dict:
    return json.loads(path.read_text())


def _reference_file(fx: dict, tmp_path: Path, suffix: str) -> Path:
    values = generate(fx["seed"], [(k, shape) for k, shape in fx["entries"]])
    sd = {k: torch.from_numpy(v) for k, v in values.items()}
    path = tmp_path / f"{fx['layout']}{suffix}"
    if suffix == ".safetensors":
        save_file(sd, str(path))
    else:
        torch.save({"state_dict": sd}, path)
    return path


def _our_logits(fx: dict, path: Path, *, deploy: bool = False) -> tuple[np.ndarray, str, float]:
    """(logits, where the weights were loaded from, the tolerance float64 round-off needs for this model)."""
    model = mobexport.create_model(fx["model"], weights=path).double().eval()
    loaded_from = model.loaded_from
    if deploy:  # folded in float64: the conventions (e.g. a BatchNorm eps) must survive re-parameterization
        model = mobexport.reparameterize(model)
    x = torch.from_numpy(inputs(fx["input_seed"], tuple(fx["input_shape"])))
    nudge = torch.from_numpy(np.random.default_rng(0).standard_normal(x.shape))
    with torch.no_grad():
        out = model(x).numpy()
        amplified = _rel_err(model(x * (1 + 1e-15 * nudge)).numpy(), out)
    return out, loaded_from, max(REL_TOL, ROUNDOFF_MARGIN * amplified)


def _rel_err(ours: np.ndarray, ref: np.ndarray) -> float:
    return float(np.abs(ours - ref).max() / np.abs(ref).max())


@pytest.mark.parametrize("fixture", FIXTURES, ids=[f.stem for f in FIXTURES])
def test_reference_layout_computes_the_reference_function(fixture, tmp_path):
    fx = _load(fixture)
    suffix = ".safetensors" if FIXTURES.index(fixture) % 2 else ".pth"
    ours, loaded_from, tol = _our_logits(fx, _reference_file(fx, tmp_path, suffix))
    layout = W.get_layout(fx["family"], fx["layout"])
    same_keys = {k for k, _ in fx["entries"]} == set(layout.to_ours({k: torch.zeros(0) for k, _ in fx["entries"]}))
    expected = ("mobexport", fx["layout"]) if same_keys else (fx["layout"],)  # identical keys match ours first
    assert loaded_from.startswith(tuple(f"{name} (train form)" for name in expected)), loaded_from
    ref = np.array(fx["logits"], dtype=np.float64)
    assert ours.shape == ref.shape
    assert tol < 1e-6, f"{fixture.stem}: float64 round-off alone moves the logits by {tol:.3g}: no test"
    assert _rel_err(ours, ref) <= tol, f"{fixture.stem}: relative max error {_rel_err(ours, ref):.3g} > {tol:.3g}"
    deployed, _, tol = _our_logits(fx, _reference_file(fx, tmp_path, suffix), deploy=True)
    assert _rel_err(deployed, ref) <= tol, f"{fixture.stem} deploy form: {_rel_err(deployed, ref):.3g} > {tol:.3g}"


def test_fixtures_use_non_trivial_batchnorm_statistics():
    fx = _load(GOLDEN / "mobilenetv3__torchvision__mobilenetv3_small_100.json")
    values = generate(fx["seed"], [(k, s) for k, s in fx["entries"]])
    var = np.concatenate([v for k, v in values.items() if k.endswith("running_var")])
    assert var.min() < 3e-4 and var.max() > 1.0  # eps 1e-3 vs 1e-5 changes low-variance channels ~3x


def test_without_the_torchvision_convention_mnv3_computes_another_function(tmp_path):
    """The defect the conventions fix: same keys and shapes, BatchNorm eps 1e-5 instead of torchvision's 1e-3."""
    fx = _load(GOLDEN / "mobilenetv3__torchvision__mobilenetv3_small_100.json")
    path = _reference_file(fx, tmp_path, ".pth")
    model = mobexport.create_model(fx["model"], weights=path)
    assert "BatchNorm eps 0.001" in model.loaded_from
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.eps = 1e-5
    x = torch.from_numpy(inputs(fx["input_seed"], tuple(fx["input_shape"])))
    with torch.no_grad():
        wrong = model.double()(x).numpy()
    assert _rel_err(wrong, np.array(fx["logits"])) > 1e-2


def test_every_registered_layout_has_a_golden_fixture_or_a_reason():
    have = {(fx["family"], fx["layout"]) for fx in map(_load, FIXTURES)}
    registered = {(fam, lay.name) for fam in W.families() for lay in W.layouts(fam)}
    assert registered, "no layouts registered"
    missing = sorted(registered - have - set(EXCLUDED))
    assert not missing, f"reference layouts without a golden fixture (add one with scripts/make_golden.py): {missing}"
    stale = sorted((set(EXCLUDED) & have) | (set(EXCLUDED) - registered))
    assert not stale, f"exclusions that no longer apply: {stale}"
    unknown = sorted(have - registered)
    assert not unknown, f"fixtures for layouts that are not registered: {unknown}"
