"""The converter registry is the one list of formats: a converter module registered with ``@register_converter``
is found by the package scan, and targets, the format subcommand with its flags, the result schema's target
values, the test matrix and the known-failure keys follow with no other edit. Typed options are checked when the
export starts, before any work."""

from __future__ import annotations

import json
import sys
import textwrap

import pytest

import mobexport.converters as converters
from mobexport.cli import main
from mobexport.converters import all_targets, formats, get_converter, resolve_target, target_for
from mobexport.converters.base import GeneralOptions, Target
from mobexport.converters.pipeline import export
from mobexport.exporter.errors import UnknownNameError, UsageError
from tests.plugins import drop_in

MODEL = "mobileone_s0"

# A whole new format in one file: TorchScript through torch.jit.trace, run with torch.jit.load.
EXTRA_CONVERTER = '''
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mobexport.converters import register_converter
from mobexport.converters.base import Availability, Converter, Options, Runner, Target, option


class ScriptRunner(Runner):
    runtime = "torch.jit"

    def __init__(self, path):
        import torch

        self.module, self.runtime_version = torch.jit.load(str(path)).eval(), torch.__version__

    def native_input(self, x):
        return np.ascontiguousarray(x, dtype=np.float32)

    def set_input(self, x):
        import torch

        self._x = torch.from_numpy(x)

    def invoke(self):
        import torch

        with torch.no_grad():
            self._y = self.module(self._x)

    def get_output(self):
        return self._y.numpy()


@dataclass(frozen=True)
class ScriptOptions(Options):
    freeze: bool = option(False, "torch.jit.freeze the traced module")


@register_converter
class ScriptConverter(Converter):
    format = "torchscript"
    summary = "export to TorchScript (a test fixture)"
    targets = (Target("torchscript", "fp32", "TorchScript, float32"),)
    Options = ScriptOptions
    extension = ".pt"

    def is_available(self):
        return Availability(True)

    def convert(self, state, out_path):
        import torch

        traced = torch.jit.trace(state.model, state.example_input)
        if ScriptOptions.of(state).freeze:
            traced = torch.jit.freeze(traced)
        traced.save(str(out_path))
        return Path(out_path)

    def load(self, artifact, threads=None):
        return ScriptRunner(artifact.path)
'''


@pytest.fixture
def extra_converter(tmp_path, monkeypatch):
    """``torchscript.py`` dropped into a folder of the converters package's path, as a new format would be."""
    module = drop_in(converters, "torchscript.py", EXTRA_CONVERTER, tmp_path, monkeypatch)
    yield "torchscript"
    sys.modules.pop(module, None)


def test_extra_converter_is_found_everywhere(extra_converter, capsys):
    from mobexport.benchmarks.results import PayloadError, load_schema, validate_payload
    from tests import app_sources, known_failures
    from tests.test_matrix import _params, ci_subset

    assert extra_converter in formats() and resolve_target("torchscript-fp32").format == "torchscript"
    assert target_for("torchscript").id == "torchscript-fp32"
    # the CLI: a subcommand with the general flags and the converter's own
    assert main(["--help"]) == 0 and "torchscript" in capsys.readouterr().out
    assert main(["torchscript", "--help"]) == 0
    helptext = capsys.readouterr().out
    assert "--freeze" in helptext and "--require-validation" in helptext and "--int8" not in helptext
    # the result schema's target values
    assert "torchscript-fp32" in load_schema()["properties"]["target"]["enum"]
    record = json.loads((app_sources.EXAMPLES_DIR / "ios_result.json").read_text())
    validate_payload({**record, "target": "torchscript-fp32"})
    with pytest.raises(PayloadError, match="target"):
        validate_payload({**record, "target": "torchscript-w8a8"})
    # the matrix and the known-failure keys
    assert f"{MODEL}:torchscript-fp32" in {p.id for p in _params()}
    assert "torchscript-fp32" in {t for _, t in ci_subset()}
    assert known_failures.matrix_cells([MODEL], "torchscript-fp32") == {("test_export_matrix",
                                                                         f"{MODEL}:torchscript-fp32")}


def test_extra_converter_exports_end_to_end(extra_converter, tmp_path, capsys):
    assert main(["torchscript", MODEL, "--freeze", "--random-bn-seed", "0", "--out", str(tmp_path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["target"] == "torchscript-fp32" and out["status"] == "OK"
    man = json.loads((tmp_path / MODEL / "torchscript-fp32" / "manifest.json").read_text())
    assert man["target"] == "torchscript-fp32" and man["fidelity"]["status"] == "OK"


def test_registration_is_checked(monkeypatch):
    from mobexport.converters import register_converter

    monkeypatch.setattr(converters, "_REGISTRY", dict(converters._REGISTRY))
    onnx = type(get_converter("onnx"))
    with pytest.raises(TypeError, match="registered twice"):
        register_converter(type("OnnxConverter2", (onnx,), {}))
    with pytest.raises(TypeError, match="declares its format"):
        register_converter(type("Nameless", (onnx,), {"format": ""}))
    with pytest.raises(UnknownNameError, match="w4"):
        Target("onnx", "w4")
    with pytest.raises(TypeError, match="every target of that format"):
        register_converter(type("Other", (onnx,), {"format": "other", "targets": (Target("onnx", "fp32"),)}))
    with pytest.raises(UnknownNameError, match="Did you mean: onnx"):
        get_converter("onxx")


def test_targets_and_schemes_come_from_the_tables():
    from mobexport.quantization.schemes import FLAG_SCHEMES, SCHEMES
    from mobexport.quantization.validate import POLICIES

    assert formats() == ["onnx", "tflite", "coreml", "tensorrt"]  # by rank
    for t in all_targets():
        assert t.precision == SCHEMES[t.scheme].precision
        assert t.needs_calibration == (t.scheme == "w8a8")
    assert FLAG_SCHEMES == {"fp16": "fp16", "int8": "w8a8", "w8": "w8"}
    assert {s.precision for s in SCHEMES.values()} <= set(POLICIES)  # a scheme has a fidelity policy


# ---------------------------------------------------------------- typed options, checked before any work

@pytest.fixture
def factory(tmp_path):
    """A user factory that leaves a mark when it is called: proof of whether the export did any work."""
    mark = tmp_path / "built"
    src = tmp_path / "net.py"
    src.write_text(textwrap.dedent(f'''
        import pathlib
        from torch import nn

        def build():
            pathlib.Path({str(mark)!r}).write_text("called")
            return nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))
        '''))
    return f"{src}:build", mark


@pytest.mark.parametrize("options, message", [
    ({"simplifier": "nope"}, "--simplifier must be one of onnxslim, onnxsim, none, got 'nope'"),
    ({"simplfier": "onnxsim"}, "'simplfier' (did you mean 'simplifier'?)"),
    ({"seed": "0"}, "--seed must be int, got '0'"),
    ({"report": True}, "--report applies to --int8 only"),
    ({"nhwc": True}, "unknown option(s) for onnx-fp32: 'nhwc'"),
    ({"tolerances": {"rtol": 1e-2, "max_cos": 0.9}}, "unknown tolerance(s) max_cos; known: atol"),
])
def test_bad_options_fail_before_any_work(factory, tmp_path, options, message):
    ref, mark = factory
    with pytest.raises(UsageError) as e:
        export(ref, "onnx-fp32", out_dir=tmp_path / "out", options=options, input_size=32)
    assert message in str(e.value)
    assert not mark.exists() and not (tmp_path / "out").exists()


def test_converter_rules_checked_before_any_work(factory, tmp_path):
    ref, mark = factory
    with pytest.raises(UsageError, match="--workspace-mb must be >= 16, got 0"):
        export(ref, "tensorrt-fp16", out_dir=tmp_path, options={"workspace_mb": 0}, input_size=32)
    with pytest.raises(UsageError, match="coreml-w8a8 needs --min-target iOS17"):
        export(ref, "coreml-w8a8", out_dir=tmp_path, options={"min_target": "iOS16"}, input_size=32)
    with pytest.raises(UsageError, match="--range-search is not offered by coreml"):
        export(ref, "coreml-w8a8", out_dir=tmp_path, options={"range_search": True}, input_size=32)
    assert not mark.exists()


@pytest.mark.parametrize("fmt", formats())
def test_every_format_takes_the_general_policies(fmt):
    from mobexport.cli import build_parser

    args = build_parser().parse_args([fmt, MODEL, "--require-validation", "--seed", "3"])
    assert (args.require_validation, args.seed) == (True, 3)
    int8_only = {"report", "range_search", "min_agreement", "min_sqnr", "keep_as", "max_keep", "full_integer"}
    assert set(GeneralOptions.names()) - {"tolerances"} - int8_only <= set(vars(args))


def test_require_validation_refuses_before_any_work(factory, tmp_path, capsys):
    conv = get_converter("coreml")
    if conv.runtime_available().ok:
        pytest.skip("Core ML can validate here")
    ref, mark = factory
    assert main(["coreml", ref, "--require-validation", "--input-size", "32", "--out", str(tmp_path / "o")]) == 3
    assert "--require-validation: cannot validate coreml-fp16 here" in capsys.readouterr().err
    assert not mark.exists() and not (tmp_path / "o").exists()
