"""Model names are answered before torch loads: the committed name index (exporter/models/names.json) equals the
registry, and a typo on the command line gets did-you-mean from it in a process that never imports torch."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from mobexport.exporter import registry

PROBE = ("import sys; from mobexport.cli import main; rc = main({argv!r}); "
         "print('RESULT', rc, 'torch' in sys.modules)")


def test_index_equals_the_registry():
    data = json.loads(registry.INDEX_PATH.read_text())
    assert data["models"] == registry.list_models(), "run: python -m mobexport.exporter.registry"
    assert data["aliases"] == dict(sorted(registry.aliases().items())), "run: python -m mobexport.exporter.registry"


@pytest.mark.parametrize("argv,needle", [
    (["onnx", "mobileon_s0"], "Did you mean: mobileone_s0"),
    (["tflite", "--int8", "mnv4_hybrid_mm"], "mnv4_hybrid_m"),
    (["info", "repvgg_a9"], "repvgg_a0"),
    (["roofline", "mnv4_conv_s", "mobilenetv2_10"], "mobilenetv2_100"),
])
def test_typo_answered_before_torch(argv, needle):
    r = subprocess.run([sys.executable, "-c", PROBE.format(argv=argv)], capture_output=True, text=True, timeout=120)
    assert "RESULT 2 False" in r.stdout, (r.stdout, r.stderr)  # exit 2, torch never imported
    assert needle in r.stderr and "unknown model" in r.stderr


def test_known_names_and_factories_pass_the_check():
    from argparse import Namespace

    from mobexport.cli import check_model_names

    check_model_names(Namespace(model="mobilenetv4_hybrid_medium"))  # a timm alias
    check_model_names(Namespace(model="my_file.py:build", models=["mobileone_s0"]))
