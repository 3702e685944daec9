"""Core ML targets with real coremltools (no runtime on Linux: structure, lint and status are what is
checked): coreml-fp16 for MobileOne through the CLI, w8a8/w8 on a small conv model, the Neural Engine lint
(rank-5, flexible shape, --strict-ane), --image-input and bad flags."""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
ct = pytest.importorskip("coremltools")

from mobexport.converters import resolve_target  # noqa: E402
from mobexport.converters.ane_lint import lint_mlpackage, lint_program, load_program  # noqa: E402
from mobexport.converters.base import ExportState  # noqa: E402
from mobexport.converters.coreml import CoreMLConverter  # noqa: E402
from mobexport.exporter.errors import ValidationError  # noqa: E402
from mobexport.exporter.specs import ModelSpec, Preprocessing  # noqa: E402

LINUX = sys.platform != "darwin"
SPEC = ModelSpec("tiny_conv", "test", (3, 64, 64), Preprocessing(resize=72, crop=64))
BGR_SPEC = ModelSpec("tiny_bgr", "test", (3, 64, 64), Preprocessing(resize=72, crop=64, color="BGR"))


def real_photos(spec, n: int) -> list[np.ndarray]:
    """Real photos shipped in installed wheels (matplotlib, scikit-learn), preprocessed, plus flips/shifts."""
    import matplotlib
    import sklearn

    from mobexport.quantization.calibration import preprocess_image

    files = [Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg",
             *(Path(sklearn.__file__).parent / "datasets" / "images").glob("*.jpg")]
    base = [preprocess_image(f, spec) for f in sorted(files)]
    views = [v for x in base for v in (x, x[..., ::-1], np.roll(x, 5, -1), np.roll(x, -7, -2))]
    return [np.ascontiguousarray(v, dtype=np.float32) for v in views[:n]]


class TinyConv(torch.nn.Module):
    def __init__(self, rank5: bool = False):
        super().__init__()
        self.rank5 = rank5
        self.stem = torch.nn.Conv2d(3, 16, 3, 2, 1)
        self.dw = torch.nn.Conv2d(16, 16, 3, 1, 1, groups=16)
        self.pw = torch.nn.Conv2d(16, 256, 1)  # > 2048 weights: above linear_quantize_weights' threshold
        self.fc = torch.nn.Linear(256, 10)

    def forward(self, x):
        x = torch.relu(self.stem(x))
        if self.rank5:  # channel shuffle through a rank-5 view
            n, c, h, w = x.shape
            x = x.view(n, 2, c // 2, h, w).transpose(1, 2).reshape(n, c, h, w)
        x = torch.relu(self.pw(torch.relu(self.dw(x))))
        return self.fc(x.mean((2, 3)))


def make_state(target_id: str, spec=SPEC, rank5: bool = False, **options) -> ExportState:
    torch.manual_seed(0)
    photos = real_photos(spec, 8)
    return ExportState(model_name=spec.name, target=resolve_target(target_id), spec=spec,
                       model=TinyConv(rank5).eval(), example_input=torch.from_numpy(photos[0]),
                       calibration=photos, options=options)


def op_types(path: Path) -> Counter:
    from mobexport.converters.ane_lint import _walk

    return Counter(op.op_type for op in _walk(load_program(path).functions["main"]))


# ---------------------------------------------------------------- CLI: the card's command, verbatim

@pytest.fixture(scope="module")
def mobileone_export(tmp_path_factory):
    from mobexport.cli import main

    out = tmp_path_factory.mktemp("coreml")
    import contextlib
    import io

    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        rc = main(["coreml", "mobileone_s1", "--out", str(out)])
    return rc, err.getvalue(), out / "mobileone_s1" / "coreml-fp16"


def test_card_command_mobileone_fp16(mobileone_export):
    rc, err, folder = mobileone_export
    assert rc == 0, err
    pkg = folder / "mobileone_s1.mlpackage"
    assert pkg.is_dir()
    types = op_types(pkg)
    assert types["conv"] > 0 and types["add"] == 0 and types["batch_norm"] == 0
    prog = load_program(pkg)
    from mobexport.converters.ane_lint import _type_name, _walk

    conv_dtypes = {_type_name(op.outputs[0].dtype) for op in _walk(prog.functions["main"]) if op.op_type == "conv"}
    assert conv_dtypes == {"fp16"}
    spec = ct.models.MLModel(str(pkg), skip_model_load=True)
    assert spec.user_defined_metadata["mobexport.model"] == "mobileone_s1"
    assert [i.name for i in spec.get_spec().description.input] == ["input"]
    assert [o.name for o in spec.get_spec().description.output] == ["logits"]


def test_card_command_manifest_status_and_lint(mobileone_export):
    rc, err, folder = mobileone_export
    m = json.loads((folder / "manifest.json").read_text())
    assert m["ane_lint"]["ops_total"] > 0 and "ops_flagged" in m["ane_lint"]
    assert m["coreml"]["conversion_path"] == "jit.trace"
    if LINUX:
        assert m["status"] == "UNVALIDATED_NO_RUNTIME"
        assert "macOS" in json.dumps(m["fidelity"])
        assert "UNVALIDATED_NO_RUNTIME" in err  # the visible notice


@pytest.mark.skipif(not LINUX, reason="Core ML can validate on macOS")
def test_require_validation_fails_without_runtime(tmp_path):
    from mobexport.cli import main

    assert main(["coreml", "mobileone_s0", "--require-validation", "--out", str(tmp_path)]) != 0
    assert not list(tmp_path.rglob("*.mlpackage"))


@pytest.mark.parametrize("argv", [
    ["coreml", "--int8", "--min-target", "iOS16", "mobileone_s0"],
    ["coreml", "--compute-units", "NPU", "mobileone_s0"],
    ["coreml", "--int8", "--w8", "mobileone_s0"],
])
def test_bad_flags_exit_2(argv, tmp_path):
    from mobexport.cli import main

    assert main([*argv, "--out", str(tmp_path)]) == 2
    assert not list(tmp_path.rglob("*.mlpackage"))


# ---------------------------------------------------------------- schemes on a small conv model

@pytest.mark.parametrize("target_id, must_have", [
    ("coreml-w8a8", ("constexpr_affine_dequantize", "quantize", "dequantize")),
    ("coreml-w8", ("constexpr_affine_dequantize",)),
])
def test_int8_schemes_have_quantized_ops(target_id, must_have, tmp_path):
    conv = CoreMLConverter()
    state = make_state(target_id)
    path = conv.convert(state, tmp_path / "tiny.mlpackage")
    types = op_types(path)
    assert all(types[t] > 0 for t in must_have), types
    assert conv.check_structure(path, state) == []
    if target_id == "coreml-w8":
        assert types["quantize"] == 0  # weights only: activations stay float
    fp16_state = make_state("coreml-fp16")
    assert conv.check_structure(path, fp16_state) == [] or target_id == "coreml-w8a8"


def test_structure_check_flags_fp16_model_as_not_int8(tmp_path):
    conv = CoreMLConverter()
    path = conv.convert(make_state("coreml-fp16"), tmp_path / "tiny.mlpackage")
    problems = conv.check_structure(path, make_state("coreml-w8a8"))
    assert any("int8 weight ops" in p for p in problems) and any("quantize" in p for p in problems)


def test_image_input_bakes_preprocessing_bgr(tmp_path):
    conv = CoreMLConverter()
    state = make_state("coreml-fp16", spec=BGR_SPEC, image_input=True)
    path = conv.convert(state, tmp_path / "img.mlpackage")
    desc = ct.models.MLModel(str(path), skip_model_load=True).get_spec().description.input[0]
    assert desc.type.WhichOneof("Type") == "imageType"
    assert desc.type.imageType.colorSpace == ct.proto.FeatureTypes_pb2.ImageFeatureType.BGR
    assert state.io["inputs"][0]["dtype"] == "uint8"
    assert conv.check_structure(path, state) == []
    assert state.reports["ane_lint"]["reasons"].get("fp32-island", 0) == 0  # image scaling is a boundary


# ---------------------------------------------------------------- the Neural Engine lint

def test_lint_flags_rank5_with_layer_and_strict_fails(tmp_path):
    conv = CoreMLConverter()
    state = make_state("coreml-fp16", rank5=True)
    conv.convert(state, tmp_path / "r5.mlpackage")
    rank5 = [f for f in state.reports["ane_lint"]["findings"] if f["rule"] == "rank>4"]
    assert rank5 and all(f["op_name"] for f in rank5)
    assert state.reports["ane_lint"]["ops_flagged"] >= 1
    with pytest.raises(ValidationError) as e:
        conv.convert(make_state("coreml-fp16", rank5=True, strict_ane=True), tmp_path / "strict.mlpackage")
    assert e.value.exit_code == 1
    assert not (tmp_path / "strict.mlpackage").exists()


def test_lint_clean_model_passes_strict(tmp_path):
    state = make_state("coreml-fp16", strict_ane=True)
    path = CoreMLConverter().convert(state, tmp_path / "ok.mlpackage")
    assert state.reports["ane_lint"]["ops_flagged"] == 0
    assert lint_mlpackage(path).ok  # the reloaded package lints the same


def test_lint_flags_flexible_shape_and_fp32_islands(tmp_path):
    model = TinyConv().eval()
    x = torch.randn(1, 3, 64, 64)
    shape = ct.Shape(shape=(1, 3, ct.RangeDim(32, 128, default=64), ct.RangeDim(32, 128, default=64)))
    ml = ct.convert(torch.jit.trace(model, x), inputs=[ct.TensorType(name="input", shape=shape)],
                    convert_to="mlprogram", compute_precision=ct.precision.FLOAT32,
                    minimum_deployment_target=ct.target.iOS17)
    report = lint_program(ml._mil_program, expect_fp16=True)
    reasons = report.reasons()
    assert reasons["flexible-shape"] == 1
    assert reasons["fp32-island"] >= 3  # an fp32 model linted as fp16: every compute op is an island
    conv_findings = [f for f in report.findings if f.op_type == "conv"]
    assert any(f.layer == "stem" for f in conv_findings)  # the PyTorch layer is named
    assert lint_program(ml._mil_program, expect_fp16=False).reasons() == Counter({"flexible-shape": 1})


class AffineInFront(torch.nn.Module):
    """conv → [per-channel op] → padded stride-2 depthwise conv: a BN there cannot be folded exactly."""

    def __init__(self, folded: bool):
        super().__init__()
        from mobexport.exporter.layers.conv import ChannelAffine

        self.stem = torch.nn.Conv2d(3, 8, 3, 2, 1)
        bn = torch.nn.BatchNorm2d(8).eval()
        bn.running_mean.uniform_(-1, 1), bn.running_var.uniform_(0.5, 2), bn.weight.data.uniform_(0.5, 2)
        self.norm = ChannelAffine.from_bn(bn) if folded else bn
        self.dw = torch.nn.Conv2d(8, 8, 3, 2, 1, groups=8)
        self.fc = torch.nn.Linear(8, 10)

    def forward(self, x):
        return self.fc(self.dw(self.norm(torch.relu(self.stem(x)))).mean((2, 3)))


@pytest.mark.parametrize("folded", [True, False])
def test_batch_norm_check_tells_kept_affine_from_unfolded_bn(tmp_path, folded):
    """coremltools fuses a ChannelAffine (x*s+b) into a batch_norm op: allowed up to the number of affines the
    deploy model keeps on purpose; a BatchNorm module left in the model is still a finding."""
    conv = CoreMLConverter()
    state = make_state("coreml-fp16")
    state.model = AffineInFront(folded).eval()
    path = conv.convert(state, tmp_path / "affine.mlpackage")
    assert op_types(path)["batch_norm"] == 1
    problems = conv.check_structure(path, state)
    assert (problems == []) if folded else any("1 batch_norm op(s) left" in p for p in problems)


class ShapeBranch(TinyConv):
    def forward(self, x):
        if x.shape[-1] > 8:  # Python control flow on a shape: torch.fx cannot trace it
            x = x * 1.0
        return super().forward(x)


def test_w8a8_on_untraceable_model_is_a_clear_conversion_error(tmp_path):
    from mobexport.exporter.errors import ConversionError

    state = make_state("coreml-w8a8")
    state.model = ShapeBranch().eval()
    with pytest.raises(ConversionError, match="torch.fx can trace") as e:
        CoreMLConverter().convert(state, tmp_path / "x.mlpackage")
    assert e.value.exit_code == 4 and "--w8" in str(e.value)
    assert not (tmp_path / "x.mlpackage").exists()
