"""A full disk during an export is the user's to fix (exit 2 naming the output folder and its free space), not a
"conversion failure" (exit 4): a real ONNX export into a 1 MiB tmpfs (needs root to mount it)."""

from __future__ import annotations

import pytest

from mobexport.cli import main

pytest.importorskip("onnx")

FACTORY = '''
import torch.nn as nn


def wide():  # ~6 MB of weights: more than the 1 MiB disk holds
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.Flatten(), nn.Linear(8 * 32 * 32, 192))
'''


@pytest.fixture
def tiny_disk(mount_tmpfs):
    return mount_tmpfs("disk", "1m")


def test_a_full_disk_is_a_usage_error_naming_the_out_folder(tiny_disk, tmp_path, capsys):
    """Before: the backend's OSError (ENOSPC) was wrapped as a ConversionError, exit 4."""
    src = tmp_path / "wide.py"
    src.write_text(FACTORY)
    code = main(["onnx", f"{src}:wide", "--input-size", "32", "--out", str(tiny_disk)])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "no space left" in err and str(tiny_disk) in err and "MiB free" in err
    assert "Traceback" not in err
    assert not [p for p in tiny_disk.rglob("*") if p.is_file()]  # the staging folder went with the failure


MID = '''
import torch.nn as nn


def mid():  # ~0.9 MB of fp32 weights: the float .tflite fits a 1 MiB disk, it and the int8 one together do not
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.Flatten(), nn.Linear(8 * 32 * 32, 27))
'''


@pytest.mark.usefixtures("assets")  # the int8 export calibrates on the asset photos
def test_a_disk_that_fills_while_the_int8_model_is_written_is_the_same_usage_error(tiny_disk, tmp_path):
    """Before: ai-edge-quantizer wrote the int8 .tflite through an mmap of a file sized up front; the full disk was
    a SIGBUS (exit 135, a CI worker lost), and the staging folder stayed behind."""
    import subprocess
    import sys

    pytest.importorskip("ai_edge_quantizer")
    src = tmp_path / "mid.py"
    src.write_text(MID)
    p = subprocess.run([sys.executable, "-m", "mobexport.cli", "tflite", "--int8", f"{src}:mid", "--input-size", "32",
                        "--out", str(tiny_disk)], capture_output=True, text=True, timeout=600)
    assert p.returncode == 2, p.stderr
    assert "no space left" in p.stderr and "convert step" in p.stderr and str(tiny_disk) in p.stderr, p.stderr
    assert not [q for q in tiny_disk.rglob("*") if q.is_file()]
