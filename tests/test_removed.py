"""Dead code removed stays removed (issue #15): options that were offered and always refused, or never used."""

from __future__ import annotations

import importlib.util

from mobexport.cli import build_parser, main


def test_lut_build_offers_only_the_runtime_it_times(tmp_path, capsys):
    """`--runtime litert` was offered and always refused after parsing; now an unknown runtime is refused before
    any work, with the registered names to choose from."""
    assert main(["lut", "build", "mobileone_s0", "--runtime", "litert", "--out", str(tmp_path / "lut.json")]) == 2
    err = capsys.readouterr().err
    assert "unknown runtime 'litert'" in err and "Did you mean: ai-edge-litert" in err, err
    args = build_parser().parse_args(["lut", "build", "mobileone_s0", "--out", str(tmp_path / "lut.json")])
    assert args.runtime == "onnxruntime"
    assert not (tmp_path / "lut.json").exists()


def test_equalization_is_gone():
    assert importlib.util.find_spec("mobexport.quantization.equalization") is None


def test_int8_recipe_pt2e_is_gone(capsys):
    """The untested PT2E recipe is removed; with one recipe left there is no option to choose it."""
    from mobexport.converters.tflite import TFLiteOptions

    assert "int8_recipe" not in TFLiteOptions.names()
    assert main(["tflite", "--int8", "mobileone_s0", "--int8-recipe", "pt2e"]) == 2
    assert "--int8-recipe" in capsys.readouterr().err
