"""The validator: metrics and policies on synthetic arrays, and the MISMATCH path end to end (a perturbed ONNX
initializer → exit 1, artifact kept, manifest status MISMATCH)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mobexport.cli import main
from mobexport.quantization import metrics
from mobexport.quantization.validate import POLICIES, judge

RNG = np.random.default_rng(0)
REF = RNG.standard_normal((8, 1000)) * 3  # float64: exact metric checks


def test_metrics_known_values():
    noise = np.full_like(REF, 0.01)
    assert metrics.max_abs(REF, REF + noise) == pytest.approx(0.01, rel=1e-5)
    assert metrics.mean_abs(REF, REF - noise) == pytest.approx(0.01, rel=1e-5)
    assert metrics.cosine(REF, 2 * REF) == pytest.approx(1.0)
    assert metrics.cosine(REF, -REF) == pytest.approx(-1.0)
    expected = 10 * np.log10(np.sum(REF**2) / (REF.size * 1e-4))
    assert metrics.sqnr_db(REF, REF + noise) == pytest.approx(expected, rel=1e-4)
    assert metrics.sqnr_db(REF, REF) == float("inf")
    shuffled = REF[:, ::-1]
    assert metrics.top1_agreement(REF, REF) == 1.0
    assert metrics.top1_agreement(REF, shuffled) < 0.5
    with pytest.raises(ValueError, match="shape"):
        metrics.max_abs(REF, REF[:1])


def test_fp32_policy_passes_tiny_error_fails_large():
    m, fails, _ = judge("fp32", REF, REF + 1e-6)
    assert fails == [] and m["max_abs"] < m["allowed_max_abs"]
    _, fails, _ = judge("fp32", REF, REF + 0.1 * RNG.standard_normal(REF.shape))
    assert any("max_abs" in f for f in fails)


def test_fp16_policy_is_looser_than_fp32():
    out = REF + 2e-3 * float(np.ptp(REF)) * RNG.uniform(-1, 1, REF.shape)
    assert judge("fp16", REF, out)[1] == []
    assert judge("fp32", REF, out)[1] != []


def test_int8_policy_collects_every_failure():
    bad = RNG.standard_normal(REF.shape)  # unrelated outputs: low SQNR and top-1 disagreement
    _, fails, pol = judge("int8", REF, bad)
    assert len(fails) == 2 and pol == POLICIES["int8"]
    assert any("top-1" in f for f in fails) and any("SQNR" in f for f in fails)
    small = REF + 0.01 * RNG.standard_normal(REF.shape)
    assert judge("int8", REF, small)[1] == []


def _perturb_first_initializer(simplify):
    def wrapped(model, simplifier):
        from onnx import numpy_helper

        model = simplify(model, simplifier)
        init = max(model.graph.initializer, key=lambda t: np.prod(t.dims))
        w = numpy_helper.to_array(init)
        init.CopyFrom(numpy_helper.from_array((w * 1.5 + 0.05).astype(w.dtype), init.name))
        return model

    return wrapped


def test_perturbed_onnx_is_mismatch_exit_1(tmp_path, monkeypatch, capsys):
    from mobexport.converters import onnx as onnx_conv

    # fault injection into the real converter: the simplified graph gets one initializer edited
    monkeypatch.setattr(onnx_conv, "simplify", _perturb_first_initializer(onnx_conv.simplify))
    rc = main(["onnx", "mobileone_mu0", "--random-bn-seed", "0", "--out", str(tmp_path), "--json"])
    out = json.loads(capsys.readouterr().out)
    assert rc == 1 and out["status"] == "MISMATCH"
    man = json.loads((tmp_path / "mobileone_mu0" / "onnx-fp32" / "manifest.json").read_text())
    assert man["status"] == "MISMATCH" and man["fidelity"]["failures"]
    assert (tmp_path / "mobileone_mu0" / "onnx-fp32" / "mobileone_mu0.onnx").is_file()  # kept, marked
