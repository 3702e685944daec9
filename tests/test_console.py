"""The whole console output of the CLI — stdout and stderr at the file-descriptor level, from a subprocess, on a
pseudo-terminal and piped — holds only lines mobexport wrote: no backend logs (absl/TF C++, oneDNN, torch.onnx's
torchvision notices, pytree ``W1130`` lines, torchao's ``Failed to load``, onnxruntime's pre-processing hint,
ai-edge-quantizer's numpy warnings, coremltools' logging and tqdm bars). Real backends, a tiny user model."""

from __future__ import annotations

import os
import pty
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TINY = f"{ROOT / 'tests' / 'fixtures' / 'custom_model.py'}:build"

# every line the project writes in these commands (after ANSI codes are stripped); anything else is a leak
OURS = [re.compile(p) for p in (
    r"^$",
    r"^\S+ → [a-z0-9-]+: [a-z_]+ (failed after )?\d+\.\d\d s$",  # a finished step and its time
    r"^\S+ → [a-z0-9-]+: [A-Z_]+$",  # the export's status line
    r"^.+ … \d+ s so far$",  # heartbeat while a step runs
    r"^  (weights|model|labels|artifact|manifest): ",
    r"^  fidelity \(.*\): max_abs ",
    r"^  (MISMATCH|UNVALIDATED_NO_RUNTIME|LOAD_FAILED): ",
    r"^  (most int8-sensitive layers|Edge TPU CPU fallback \(estimate\)): ",
    r"^notice: ",  # a converter's notice (Core ML without a runtime, TensorRT without its libraries)
    r"^ANE lint: \d+ ops, \d+ flagged",  # Core ML's Neural Engine lint summary
    r"^\[\d+/\d+\] \S+: \d+ runs after \d+ warm-up$",  # bench progress
    r"^\s*host benchmark \(min of N round trips, ms\)\s*$",  # bench table title, frame and rows
    r"^[┏┃┡│└]",
    r"^\s*[┃│]",
    r"^note: \S+: ",
    r"^(SKIPPED|LOAD_FAILED|RUN_FAILED): ",
)]
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")

EXPORTS = [["onnx"], ["tflite", "--int8"], ["coreml"], ["tensorrt"]]


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("MOBEXPORT_VERBOSE", "TQDM_DISABLE", "TF_CPP_MIN_LOG_LEVEL")}
    env["COLUMNS"] = "100"
    return env


def _piped(args: list[str]) -> tuple[int, str]:
    p = subprocess.run([sys.executable, "-m", "mobexport.cli", *args], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, env=_env(), cwd=ROOT, timeout=600)
    return p.returncode, p.stdout.decode("utf-8", "replace")


def _on_pty(args: list[str]) -> tuple[int, str]:
    master, slave = pty.openpty()
    p = subprocess.Popen([sys.executable, "-m", "mobexport.cli", *args], stdin=slave, stdout=slave, stderr=slave,
                         env=_env(), cwd=ROOT, close_fds=True)
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    return p.wait(timeout=600), b"".join(chunks).decode("utf-8", "replace")


def _foreign(text: str) -> list[str]:
    lines = ANSI.sub("", text).replace("\r\n", "\n").split("\n")
    return [ln for ln in lines if not any(p.match(ln.rstrip("\r")) for p in OURS)]


@pytest.fixture(scope="module")
def onnx_export(tmp_path_factory):
    out = tmp_path_factory.mktemp("console")
    rc, text = _piped(["onnx", TINY, "--input-size", "64", "--out", str(out)])
    assert rc == 0, text
    return out / "build" / "onnx-fp32"


@pytest.mark.parametrize("how", [_piped, _on_pty], ids=["piped", "pty"])
@pytest.mark.parametrize("cmd", EXPORTS, ids=[" ".join(c) for c in EXPORTS])
def test_export_console_holds_only_our_lines(cmd, how, tmp_path):
    rc, text = how([*cmd, TINY, "--input-size", "64", "--out", str(tmp_path)])
    assert rc in (0, 1), text  # 1: a fidelity MISMATCH is a result, not a crash (tensorrt-fp16 on CPU ORT)
    assert _foreign(text) == [], text
    assert re.search(r"build → [a-z0-9-]+: convert \d+\.\d\d s", ANSI.sub("", text)), text  # progress when piped too
    if cmd == ["coreml"]:  # the converter's own notices are ours: hidden backends must not hide them
        assert re.search(r"^ANE lint: ", ANSI.sub("", text), re.M), text
        assert "notice: coreml-fp16 is UNVALIDATED_NO_RUNTIME" in text, text


@pytest.mark.parametrize("how", [_piped, _on_pty], ids=["piped", "pty"])
def test_bench_console_holds_only_our_lines(onnx_export, how):
    rc, text = how(["bench", str(onnx_export), "--runs", "20", "--no-store"])
    assert rc == 0, text
    assert _foreign(text) == [], text


def test_verbose_shows_backend_output(tmp_path):
    """The same export with -v: the backends' own lines are there (the capture hides them; it does not lose
    them), so the allow-list above is really checking something."""
    rc, text = _piped(["-v", "onnx", TINY, "--input-size", "64", "--out", str(tmp_path)])
    assert rc == 0, text
    assert _foreign(text), text


def test_errors_still_reach_the_user(tmp_path):
    rc, text = _piped(["onnx", f"{ROOT / 'tests' / 'fixtures' / 'custom_model.py'}:raises", "--out", str(tmp_path)])
    assert rc == 2 and re.search(r"^error: ", text, re.M), text
