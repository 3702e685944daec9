"""The shared export pipeline: target resolution, CLI exit codes, bad input leaves nothing behind,
step errors name step/model/target, backend failures map to the layer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from mobexport.cli import main
from mobexport.converters import all_targets, get_converter, resolve_target, target_for
from mobexport.converters.base import Converter, ExportState, unsupported_op_from
from mobexport.converters.pipeline import STEPS, export
from mobexport.exporter.errors import (
    CalibrationError,
    ConversionError,
    UnknownNameError,
    UnsupportedOpError,
    UsageError,
)

MODEL = "mobileone_s0"


def _leftovers(root: Path) -> list[Path]:
    return [p for p in root.rglob("*")] if root.exists() else []


def test_registry_targets_and_did_you_mean():
    ids = [t.id for t in all_targets()]
    assert {"onnx-fp32", "tflite-fp32", "tflite-fp16", "tflite-w8a8"} <= set(ids)
    assert len(ids) == len(set(ids))
    assert resolve_target("tflite-w8a8").scheme == "w8a8"
    with pytest.raises(UnknownNameError) as e:
        resolve_target("tflite-int8")
    assert "tflite-w8a8" in str(e.value)
    for t in all_targets():  # every target id is <format>-<scheme> and belongs to its converter
        assert t.id == f"{t.format}-{t.scheme}" and t in get_converter(t.format).targets


def test_target_for_flags():
    assert target_for("tflite", {}).id == "tflite-fp32"
    assert target_for("tflite", {"int8": True}).id == "tflite-w8a8"
    assert target_for("tflite", {"fp16": True}).id == "tflite-fp16"
    with pytest.raises(UsageError, match="mutually exclusive"):
        target_for("tflite", {"fp16": True, "int8": True})
    with pytest.raises(UsageError, match="does not offer"):
        target_for("onnx", {"int8": True})


def test_cli_conflicting_flags_exit_2(tmp_path, capsys):
    assert main(["tflite", MODEL, "--fp16", "--int8", "--out", str(tmp_path)]) == 2
    assert "mutually exclusive" in capsys.readouterr().err
    assert _leftovers(tmp_path) == []


def test_cli_unknown_model_did_you_mean(tmp_path, capsys):
    assert main(["onnx", "mobileone_s9", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "unknown model 'mobileone_s9'" in err and "Did you mean" in err and "mobileone_s" in err
    assert _leftovers(tmp_path) == []


def test_unwritable_out_dir_exit_2(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    assert main(["onnx", MODEL, "--out", str(blocker / "sub")]) == 2
    assert "cannot write to output directory" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_corrupt_weights_exit_2_nothing_left(tmp_path, capsys):
    bad = tmp_path / "w.pth"
    bad.write_bytes(b"\x00garbage, not a checkpoint")
    out = tmp_path / "out"
    assert main(["onnx", MODEL, "--weights", str(bad), "--out", str(out)]) == 2
    assert "w.pth" in capsys.readouterr().err
    assert _leftovers(out) == []


def test_empty_calibration_dir_exit_2(tmp_path, capsys):
    empty = tmp_path / "calib"
    empty.mkdir()
    out = tmp_path / "out"
    assert main(["tflite", MODEL, "--int8", "--calibration", str(empty), "--out", str(out)]) == 2
    assert "has no images" in capsys.readouterr().err
    assert _leftovers(out) == []


def test_calibration_errors(tmp_path):
    from PIL import Image

    from mobexport.api import get_spec
    from mobexport.quantization.calibration import MIN_CALIBRATION_IMAGES, image_sets

    spec = get_spec(MODEL)
    with pytest.raises(CalibrationError, match="not found"):
        image_sets(spec, tmp_path / "missing")
    few = tmp_path / "few"
    few.mkdir()
    for i in range(3):
        Image.new("RGB", (64, 48), (i * 40, 10, 200)).save(few / f"{i}.png")
    with pytest.raises(CalibrationError, match=f"at least {MIN_CALIBRATION_IMAGES}"):
        image_sets(spec, few, max_calibration=2)
    for i in range(3, MIN_CALIBRATION_IMAGES + 4):
        Image.new("RGB", (64, 48), (i * 10, 10, 200)).save(few / f"{i}.png")
    (few / "broken.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(CalibrationError, match="broken.jpg"):
        image_sets(spec, few)


def test_calibration_only_for_int8(tmp_path):
    with pytest.raises(UsageError, match="int8"):
        export(MODEL, "onnx-fp32", out_dir=tmp_path, calibration_dir=tmp_path)


def test_backend_failure_maps_to_layer():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.GELU(), nn.AdaptiveAvgPool2d(1)).eval()
    state = ExportState("toy", resolve_target("onnx-fp32"), model=model, example_input=torch.randn(1, 3, 8, 8))
    err = unsupported_op_from(RuntimeError("no lowering for aten.gelu.default in graph"), state, "toy-backend")
    assert isinstance(err, UnsupportedOpError)
    assert err.op == "aten.gelu" and err.layer == "1" and "toy-backend" in str(err)
    assert unsupported_op_from(RuntimeError("out of memory"), state, "toy-backend") is None


class NoExportPath(nn.Module):
    """Runs in eager mode, refuses torch.export (as a block with a Python-only path does)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x):
        if torch.compiler.is_exporting():
            raise NotImplementedError("this block has no export path")
        return self.conv(x).mean((2, 3))


def test_step_error_names_step_model_target(tmp_path):
    # a backend's own exception inside the convert step of the real ONNX converter
    with pytest.raises(ConversionError) as e:
        export(NoExportPath().eval(), "onnx-fp32", out_dir=tmp_path, input_shape=(1, 3, 32, 32), name="noexport")
    # exactly a ConversionError (not a subclass such as UnsupportedOpError), the backend's own error its cause
    assert type(e.value) is ConversionError and type(e.value.__cause__).__name__ == "TorchExportError"
    assert (e.value.step, e.value.model, e.value.target) == ("convert", "noexport", "onnx-fp32")
    assert str(e.value).startswith("[noexport/onnx-fp32/convert]") and "no export path" in str(e.value)
    assert _leftovers(tmp_path) == []


def test_steps_are_a_named_list():
    assert [name for name, _ in STEPS] == ["load", "reparameterize", "fold_batchnorm", "equivalence_check",
                                           "convert", "validate", "write_manifest"]
    assert all(fn.__name__ == f"step_{name}" for name, fn in STEPS)
    assert not hasattr(Converter, "quantize")  # converters quantize inside convert; no empty step


def test_cli_json_export_and_reexport_replaces(tmp_path, capsys):
    args = ["onnx", MODEL, "--random-bn-seed", "0", "--out", str(tmp_path), "--json"]
    assert main(args) == 0
    first = json.loads(capsys.readouterr().out)
    assert {"artifact", "manifest", "target", "status", "fidelity"} <= set(first)
    assert first["status"] == "OK" and first["target"] == "onnx-fp32"
    man = json.loads(Path(first["manifest"]).read_text())
    for key in ("model", "target", "weights", "input", "preprocessing", "output_names", "sha256", "fidelity",
                "tool_versions", "git_commit", "timestamp", "status"):
        assert key in man, key
    assert man["input"]["layout"] == "NCHW" and man["input"]["shape"] == [1, 3, 224, 224]
    assert man["weights"].startswith("random")
    assert main(args) == 0  # exporting again replaces the folder atomically
    capsys.readouterr()
    assert sorted(p.name for p in (tmp_path / MODEL).iterdir()) == ["onnx-fp32"]
