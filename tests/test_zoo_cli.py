"""The zoo commands (`list`, `info`) and the CLI shell, called in-process through ``mobexport.cli.main``."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

import mobexport
from mobexport.cli import COMMANDS, main


@pytest.fixture(autouse=True)
def _wide_terminal(monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")  # rich tables must not fold model names


def _json(capsys, argv):
    code = main(argv)
    out = capsys.readouterr()
    assert code == 0, out.err
    return json.loads(out.out)


def test_list_table_shows_every_model(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    missing = [n for n in mobexport.list_models() if n not in out]
    assert not missing, f"not in the table: {missing}"
    assert "mobileone_s0" in out and "repvgg_b3g4" in out


def test_list_pattern_json_natural_order(capsys):
    rows = _json(capsys, ["list", "mobileone*", "--json"])
    names = [r["name"] for r in rows]
    assert set(names) == {f"mobileone_s{i}" for i in range(5)} | {f"mobileone_mu{i}" for i in range(3)}
    s = [n for n in names if n.startswith("mobileone_s")]
    mu = [n for n in names if n.startswith("mobileone_mu")]
    assert s == [f"mobileone_s{i}" for i in range(5)] and mu == [f"mobileone_mu{i}" for i in range(3)]
    assert names == mobexport.list_models("mobileone*")
    s1 = rows[names.index("mobileone_s1")]
    assert s1["family"] == "mobileone" and s1["input_size"] == [3, 224, 224]
    assert s1["published_params"] == 4_800_000 and s1["published_top1"] == 75.9


def test_list_natural_order_is_numeric_not_lexicographic(capsys):
    names = [r["name"] for r in _json(capsys, ["list", "repvgg_b*", "--json"])]
    assert names.index("repvgg_b1") < names.index("repvgg_b1g2") < names.index("repvgg_b1g4") \
        < names.index("repvgg_b2") < names.index("repvgg_b3g4")


def test_list_no_match_is_empty(capsys):
    assert _json(capsys, ["list", "nosuchfamily*", "--json"]) == []


def test_info_json_measured_params_equal_reference(capsys):
    d = _json(capsys, ["info", "mobileone_s1", "--json"])
    assert d["name"] == "mobileone_s1" and d["multi_branch"] is True
    assert d["measured"]["deploy_params"] == d["reference"]["params"] == 4_764_840
    assert d["measured"]["train_params"] == 4_825_192
    assert abs(d["measured"]["deploy_macs"] - 825_100_000) / 825_100_000 < 0.002
    assert d["preprocessing"]["crop"] == 224 and d["preprocessing"]["color"] == "RGB"


def test_info_text(capsys):
    assert main(["info", "repvgg_a0", "--no-count"]) == 0
    out = capsys.readouterr().out
    assert "repvgg_a0" in out and "family=repvgg" in out and "repvgg_a0.rvgg_in1k" in out


@pytest.mark.parametrize("argv,suggestion", [
    (["info", "mobileone_s9"], "mobileone_s"),
    (["info", "repvgg_b9g4", "--no-count"], "repvgg_b"),
])
def test_unknown_model_exits_2_with_suggestions(capsys, argv, suggestion):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "unknown model" in err and argv[1] in err
    did_you_mean = err.split("Did you mean:")[1].splitlines()[0]
    assert suggestion in did_you_mean, err


@pytest.mark.parametrize("alias,canonical", [
    ("mobileone_s1.apple_in1k", "mobileone_s1"),
    ("repvgg_b1g4.rvgg_in1k", "repvgg_b1g4"),
])
def test_timm_alias_resolves(capsys, alias, canonical):
    d = _json(capsys, ["info", alias, "--json", "--no-count"])
    assert d["name"] == canonical and alias in d["aliases"]
    assert mobexport.get_spec(alias).name == canonical


def test_bad_flag_exits_2(capsys):
    assert main(["list", "--no-such-flag"]) == 2
    assert "unrecognized arguments" in capsys.readouterr().err


def test_help_lists_every_command_without_importing_torch():
    code = textwrap.dedent("""
        import sys
        import mobexport.cli as cli
        text = cli.build_parser().format_help()
        heavy = [m for m in ("torch", "onnx", "onnxruntime", "coremltools", "litert_torch", "ai_edge_litert",
                             "tensorrt", "fastapi", "sqlalchemy", "matplotlib", "ray") if m in sys.modules]
        assert not heavy, f"imported by --help: {heavy}"
        print(text)
    """)
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    missing = [name for name, _, _ in COMMANDS if name not in res.stdout]
    assert not missing, f"commands not in --help: {missing}"


def test_help_in_process_exits_0(capsys):
    assert main(["--help"]) == 0
    assert "usage: mobexport" in capsys.readouterr().out
