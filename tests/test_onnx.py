"""ONNX converter: real torch.onnx export + onnxsim + onnxruntime parity on a representative subset (CI) and
every registered model in tests/test_matrix.py."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mobexport.converters import get_converter
from mobexport.converters.manifest import sha256_path
from mobexport.converters.pipeline import export
from tests.test_matrix import representative_models

pytestmark = pytest.mark.skipif(not get_converter("onnx").is_available().ok,
                                reason=get_converter("onnx").is_available().reason or "onnx unavailable")


@pytest.fixture(scope="module")
def mobileone(tmp_path_factory):
    out = tmp_path_factory.mktemp("onnx")
    return export("mobileone_s0", "onnx-fp32", out_dir=out, options={"random_bn_seed": 0})


def test_mobileone_onnx_ok_and_structure(mobileone):
    import onnx

    assert mobileone.status.value == "OK", mobileone.fidelity
    m = onnx.load(str(mobileone.artifact))
    ops = {n.op_type for n in m.graph.node}
    assert "BatchNormalization" not in ops
    assert "Add" not in ops  # multi-branch blocks merged into single convs
    assert [i.name for i in m.graph.input] == ["input"]
    dims = [d.dim_value for d in m.graph.input[0].type.tensor_type.shape.dim]
    assert dims == [1, 3, 224, 224]  # fixed shape by default
    fid = mobileone.fidelity
    assert fid["metrics"]["max_abs"] <= fid["metrics"]["allowed_max_abs"]
    assert fid["metrics"]["cosine"] > 0.99999


def test_mobileone_manifest_and_embedded_metadata(mobileone):
    import onnx

    man = json.loads(mobileone.manifest_path.read_text())
    assert man["sha256"] == sha256_path(mobileone.artifact)
    assert man["onnx"]["opset"] == 18 and man["onnx"]["simplifier"] == "onnxsim"
    assert man["output_names"] == ["logits"]
    props = {p.key: p.value for p in onnx.load(str(mobileone.artifact)).metadata_props}
    assert props["mobexport.model"] == "mobileone_s0"
    assert props["mobexport.target"] == "onnx-fp32"
    assert json.loads(props["mobexport.preprocessing"])["crop"] == 224
    assert not list(mobileone.artifact.parent.glob("*.data"))  # single self-contained file


def test_dynamic_batch_runs_batch_4(tmp_path):
    import onnxruntime as ort

    r = export("mobileone_mu0", "onnx-fp32", out_dir=tmp_path,
               options={"random_bn_seed": 0, "dynamic_batch": True})
    assert r.status.value == "OK"
    assert r.manifest["input"]["shape"][0] != 1
    sess = ort.InferenceSession(str(r.artifact), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).standard_normal((4, 3, 224, 224)).astype(np.float32)
    y = sess.run(None, {"input": x})[0]
    assert y.shape == (4, 1000)


@pytest.mark.parametrize("model", representative_models("hybrid")[:1])
def test_hybrid_onnx_ok(model, tmp_path):
    r = export(model, "onnx-fp32", out_dir=tmp_path, options={"random_bn_seed": 0})
    assert r.status.value == "OK", r.fidelity
