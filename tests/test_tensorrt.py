"""TensorRT targets: fp16 ONNX and Q/DQ int8 ONNX built from an onnx-fp32 artifact, validated with onnxruntime
through the shared validator; the engine step reports UNVALIDATED_NO_RUNTIME where TensorRT/CUDA is missing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from mobexport.converters import resolve_target  # noqa: E402
from mobexport.converters.base import Artifact, ExportState  # noqa: E402
from mobexport.converters.tensorrt import TensorRTConverter, engine_available, node_counts, to_fp16  # noqa: E402
from mobexport.exporter.specs import ModelSpec, Preprocessing  # noqa: E402
from mobexport.exporter.status import Status  # noqa: E402
from mobexport.quantization.validate import validate  # noqa: E402

SPEC = ModelSpec("tiny_conv", "test", (3, 64, 64), Preprocessing(resize=72, crop=64))


def real_photos(spec, n: int) -> list[np.ndarray]:
    """Real photos shipped inside installed wheels (matplotlib, scikit-learn), preprocessed per the spec, plus
    flips and shifted crops so there are ``n`` distinct inputs."""
    import matplotlib
    import sklearn

    from mobexport.quantization.calibration import preprocess_image

    files = [Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg",
             *(Path(sklearn.__file__).parent / "datasets" / "images").glob("*.jpg")]
    base = [preprocess_image(f, spec) for f in sorted(files)]
    views = [v for x in base for v in (x, x[..., ::-1], np.roll(x, 5, -1), np.roll(x, -7, -2))]
    return [np.ascontiguousarray(v, dtype=np.float32) for v in views[:n]]


class TinyConv(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.features = torch.nn.Sequential(
            torch.nn.Conv2d(3, 16, 3, 2, 1), torch.nn.ReLU(), torch.nn.Conv2d(16, 16, 3, 1, 1, groups=16),
            torch.nn.ReLU(), torch.nn.Conv2d(16, 32, 1), torch.nn.Hardswish())
        self.fc = torch.nn.Linear(32, 10)

    def forward(self, x):
        return self.fc(self.features(x).mean((2, 3)))


@pytest.fixture(scope="module")
def onnx_fp32(tmp_path_factory) -> Path:
    """The dependency artifact (what the pipeline's onnx-fp32 target hands over), made here with torch.onnx."""
    torch.manual_seed(0)
    model = TinyConv().eval()
    path = tmp_path_factory.mktemp("onnx") / "tiny_conv.onnx"
    torch.onnx.export(model, (torch.randn(1, 3, 64, 64),), str(path), input_names=["input"],
                      output_names=["logits"], opset_version=18, dynamo=False)
    return path


def make_state(target_id: str, dep: Path) -> ExportState:
    torch.manual_seed(0)
    model = TinyConv().eval()
    photos = real_photos(SPEC, 12)
    return ExportState(model_name="tiny_conv", target=resolve_target(target_id), spec=SPEC, model=model,
                       example_input=torch.from_numpy(photos[0]), calibration=photos[:8], holdout=photos[8:],
                       dependencies={"onnx-fp32": Artifact("onnx-fp32", dep)})


def convert_and_validate(target_id: str, dep: Path, tmp_path: Path):
    conv = TensorRTConverter()
    state = make_state(target_id, dep)
    path = conv.convert(state, tmp_path / "tiny_conv.onnx")
    state.reports["structure"] = conv.check_structure(path, state)
    runner = conv.load(Artifact(target_id, path))
    return conv, state, path, validate(runner, state)


def test_targets_declare_onnx_dependency():
    for t in TensorRTConverter().targets:
        assert t.depends_on == ("onnx-fp32",)
    assert {t.scheme for t in TensorRTConverter().targets} == {"fp16", "w8a8"}


def test_fp16_onnx_keeps_float32_io_and_validates(onnx_fp32, tmp_path):
    conv, state, path, report = convert_and_validate("tensorrt-fp16", onnx_fp32, tmp_path)
    m = onnx.load(str(path))
    assert state.reports["structure"] == []
    assert all(i.data_type == onnx.TensorProto.FLOAT16 for i in m.graph.initializer
               if i.data_type in (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16))
    assert [v.type.tensor_type.elem_type for v in [*m.graph.input, *m.graph.output]] == [onnx.TensorProto.FLOAT] * 2
    assert node_counts(path)["Cast"] >= 2
    assert report.status is Status.OK, report.to_dict()
    assert report.metrics["max_abs"] > 0  # really fp16: not bit-identical to fp32


def test_qdq_onnx_symmetric_int8_validates(onnx_fp32, tmp_path):
    conv, state, path, report = convert_and_validate("tensorrt-w8a8", onnx_fp32, tmp_path)
    counts = node_counts(path)
    assert counts["QuantizeLinear"] >= 4 and counts["DequantizeLinear"] >= 4
    assert state.reports["structure"] == []
    assert report.status is Status.OK, report.to_dict()
    assert report.metrics["sqnr_db"] >= 10


def test_fp16_conversion_clips_to_half_range():
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.array([1e6, -1e6, 0.5], np.float32), "w")
    g = helper.make_graph([helper.make_node("Mul", ["input", "w"], ["logits"])], "g",
                          [helper.make_tensor_value_info("input", TensorProto.FLOAT, [3])],
                          [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [3])], [w])
    m = to_fp16(helper.make_model(g, opset_imports=[helper.make_opsetid("", 18)], ir_version=10))
    arr = numpy_helper.to_array(m.graph.initializer[0])
    assert arr.dtype == np.float16 and np.isfinite(arr).all() and arr[0] == np.float16(65504)
    import onnxruntime as ort

    y = ort.InferenceSession(m.SerializeToString()).run(None, {"input": np.ones(3, np.float32)})[0]
    assert y.dtype == np.float32


def test_structure_check_catches_wrong_precision(onnx_fp32):
    problems = TensorRTConverter().check_structure(onnx_fp32, make_state("tensorrt-fp16", onnx_fp32))
    assert any("float32 initializer" in p for p in problems)
    problems = TensorRTConverter().check_structure(onnx_fp32, make_state("tensorrt-w8a8", onnx_fp32))
    assert any("Q/DQ" in p for p in problems)


def test_missing_tensorrt_is_unvalidated_with_reason(onnx_fp32, tmp_path):
    avail = engine_available()
    if avail.ok:
        pytest.skip("TensorRT and a CUDA GPU are present: the engine is built instead")
    conv = TensorRTConverter()
    state = make_state("tensorrt-fp16", onnx_fp32)
    path = conv.convert(state, tmp_path / "m.onnx")
    engine = conv.manifest_extras(state, path)["tensorrt_engine"]
    assert engine["status"] == Status.UNVALIDATED_NO_RUNTIME.value
    assert "TensorRT" in engine["reason"] or "CUDA" in engine["reason"]
    assert not path.with_suffix(".engine").exists()


def test_engine_build_where_tensorrt_exists(onnx_fp32, tmp_path):
    avail = engine_available()
    if not avail.ok:
        pytest.skip(avail.reason)
    conv = TensorRTConverter()
    state = make_state("tensorrt-fp16", onnx_fp32)
    state.reference_output = state.model(state.example_input).detach()
    path = conv.convert(state, tmp_path / "m.onnx")
    assert path.with_suffix(".engine").is_file()
    engine = state.reports["tensorrt_engine"]
    assert engine["status"] == "OK" and engine["fidelity"]["metrics"]["cosine"] > 0.99, engine
    # timed by the tensorrt runtime with the one loop (benchmarks/worker.py), as bench --runtime tensorrt does
    from mobexport.benchmarks.worker import time_round_trips, warm_up
    from mobexport.converters.runtimes import get_runtime

    runner = get_runtime("tensorrt").load(path)
    x = runner.native_input(np.zeros((1, 3, 64, 64), np.float32))
    warm_up(runner, x, 2)
    assert min(time_round_trips(runner, x, 10)) > 0


def test_missing_dependency_is_a_conversion_error(tmp_path):
    from mobexport.exporter.errors import ConversionError

    state = make_state("tensorrt-fp16", tmp_path / "absent.onnx")
    with pytest.raises(ConversionError, match="onnx-fp32"):
        TensorRTConverter().convert(state, tmp_path / "m.onnx")


@pytest.mark.parametrize("argv", [
    ["tensorrt", "--w8", "mobileone_s0"],
    ["tensorrt", "--fp16", "--int8", "mobileone_s0"],
    ["tensorrt", "--workspace-mb", "0", "mobileone_s0"],
    ["tensorrt", "--profiling-verbosity", "loud", "mobileone_s0"],
])
def test_bad_flags_exit_2(argv, tmp_path):
    from mobexport.cli import main

    assert main([*argv, "--out", str(tmp_path)]) == 2
    assert not any(tmp_path.iterdir())


def test_cli_fp16_end_to_end(tmp_path, capsys):
    from mobexport.cli import main
    from mobexport.converters.manifest import read_manifest

    rc = main(["tensorrt", "mobileone_s0", "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert rc == 0, err
    m = read_manifest(tmp_path / "mobileone_s0" / "tensorrt-fp16")
    assert m["status"] == "OK"  # the ONNX ran on onnxruntime
    # built or not, nothing here compares the engine's outputs with PyTorch: a Status value and a visible notice
    assert m["tensorrt_engine"]["status"] == "UNVALIDATED_NO_RUNTIME" and m["tensorrt_engine"]["reason"]
    assert "UNVALIDATED_NO_RUNTIME" in err


def test_tensorrt_runtime_is_registered_and_refuses_cleanly_here(onnx_fp32, tmp_path):
    """The engine runs through the runtime registry (``tensorrt``, format tensorrt; onnxruntime stays the
    format's default: it runs the engine's ONNX anywhere). Without TensorRT/CUDA it says so with the install
    hint, ``load`` raises that reason, and bench lists the artifact as SKIPPED — never a number."""
    from mobexport.benchmarks.harness import BenchConfig, bench_artifact
    from mobexport.converters import runtimes

    rt = runtimes.get_runtime("tensorrt")
    assert rt.formats == ("tensorrt",) and rt in runtimes.runtimes_for("tensorrt")
    assert runtimes.default_runtime("tensorrt").name == "onnxruntime"
    avail = rt.available()
    if avail.ok:
        pytest.skip("TensorRT and a CUDA GPU are present: test_engine_build_where_tensorrt_exists runs instead")
    assert ("TensorRT" in avail.reason or "CUDA" in avail.reason) and "tensorrt" in avail.install_hint
    assert engine_available() == avail  # the converter asks the runtime
    with pytest.raises(RuntimeError, match="TensorRT|CUDA"):
        rt.load(onnx_fp32)
    manifest = {"model": "tiny_conv", "target": "tensorrt-fp16", "status": "OK",
                "inputs": [{"name": "input", "shape": [1, 3, 64, 64], "dtype": "float32", "layout": "NCHW"}]}
    out = bench_artifact(Artifact("tensorrt-fp16", onnx_fp32, None, manifest),
                         BenchConfig(runs=5, warmup=0, runtime="tensorrt", in_process=True))
    assert out.bench_status is Status.SKIPPED and out.result is None
    assert out.reason.startswith("tensorrt runtime unavailable: ") and avail.reason in out.reason
