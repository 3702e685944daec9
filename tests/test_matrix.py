"""Every registered model × every target of every registered converter, written once.

CI runs a representative subset (the smallest model of each family on onnx-fp32 and tflite-fp32 — the two
targets every model must pass — plus every other target on at least one family, rotating over the cheapest); the rest is
marked ``slow`` and runs with ``make matrix`` / ``pytest -m slow``. Expected failures live only in
tests/known_failures.py. A guard test fails if a model or target is missing from the matrix.
"""

from __future__ import annotations

import pytest

import mobexport
from mobexport.converters import all_targets, get_converter
from mobexport.converters.pipeline import export
from mobexport.exporter.status import Status
from tests.known_failures import KNOWN

MODELS = mobexport.list_models()
EVERY_MODEL = ("onnx-fp32", "tflite-fp32")


def representative_models(kind: str | None = None) -> list[str]:
    """The smallest registered model of each family (by published params), optionally of one kind."""
    best: dict[str, tuple[int, str]] = {}
    for n in MODELS:
        s = mobexport.get_spec(n)
        if kind and s.kind != kind:
            continue
        size = s.published.params or 10**12
        if s.family not in best or size < best[s.family][0]:
            best[s.family] = (size, n)
    return sorted(n for _, n in best.values())


def targets() -> list[str]:
    """Every target of every registered converter (read when asked: a converter registered later is in)."""
    return [t.id for t in all_targets()]


def ci_subset() -> set[tuple[str, str]]:
    reps = representative_models()
    cells = {(m, t) for m in reps for t in EVERY_MODEL}
    others = [t for t in targets() if t not in EVERY_MODEL]
    # the other targets rotate over the families' representatives cheapest first (published MACs): with the zoo-III
    # families a rotation by name put tflite-fp16 on ECA-NFNet-L0 (7 GMACs, 150 s on 2 cores)
    cheap = sorted(reps, key=lambda n: (mobexport.get_spec(n).published.macs or 10**15, n))
    for i, t in enumerate(others):
        cells.add((cheap[i % len(cheap)], t))
    return cells | PATHS_OF_THEIR_OWN


# cells whose conversion path no representative takes (each once broke where the subset did not look):
# MNv4-Hybrid's kept per-channel affine on the strided K/V path (coremltools fuses it into a batch_norm op;
# torch.fx must trace it for the w8a8 quantizer)
PATHS_OF_THEIR_OWN = {("mnv4_hybrid_m", "coreml-fp16"), ("mnv4_hybrid_m", "coreml-w8a8")}


def _params():
    ci = ci_subset()
    out = []
    for m in MODELS:
        for t in targets():
            marks = [] if (m, t) in ci else [pytest.mark.slow]
            reason = KNOWN.get(("test_export_matrix", f"{m}:{t}"))
            if reason:
                marks.append(pytest.mark.xfail(strict=True, reason=reason))
            out.append(pytest.param(m, t, marks=marks, id=f"{m}:{t}"))
    return out


def test_matrix_covers_every_family_and_target():
    ci = ci_subset()
    families = {mobexport.get_spec(m).family for m in MODELS}
    assert {mobexport.get_spec(m).family for m, _ in ci} == families
    assert {t for _, t in ci} == set(targets())
    stale = [k for k in KNOWN if k[0] == "test_export_matrix" and tuple(k[1].split(":")) not in
             {(m, t) for m in MODELS for t in targets()}]
    assert not stale, f"known failures name cells that do not exist: {stale}"


@pytest.mark.parametrize("model, target", _params())
def test_export_matrix(model, target, tmp_path):
    conv = get_converter(target.split("-", 1)[0])
    if not conv.is_available().ok:
        pytest.skip(conv.is_available().reason)
    r = export(model, target, out_dir=tmp_path, options={"random_bn_seed": 0})
    assert r.manifest["model"] == model and r.manifest["target"] == target
    assert r.artifact.exists() and r.manifest["sha256"]
    assert not r.manifest.get("structure_problems"), r.manifest.get("structure_problems")
    if conv.runtime_available().ok:
        assert r.status is Status.OK, r.fidelity
    else:  # e.g. Core ML off macOS: never a pass, always said so
        assert r.status is Status.UNVALIDATED_NO_RUNTIME and r.fidelity["inputs"]
    if target == "tflite-w8a8":  # full integer: int8 in/out, no float op left
        t = r.manifest["tflite"]
        assert (t["input_dtype"], t["output_dtype"], t["float_ops"]) == ("int8", "int8", {})
