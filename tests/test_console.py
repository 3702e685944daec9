"""The whole console output of the CLI — stdout and stderr at the file-descriptor level, from a subprocess, on a
pseudo-terminal and piped — holds only lines mobexport wrote (on the terminal its live display, every frame of
it; piped one plain line per finished step and nothing that redraws): no backend logs (absl/TF C++, oneDNN, torch.onnx's
torchvision notices, pytree ``W1130`` lines, torchao's ``Failed to load``, onnxruntime's pre-processing hint,
ai-edge-quantizer's numpy warnings, coremltools' logging and tqdm bars). Real backends, a tiny user model."""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TINY = f"{ROOT / 'tests' / 'fixtures' / 'custom_model.py'}:build"

# one line of the live display: state, model → target, the step in progress (or done/failed) and its time, the
# finished steps (cut with … at the terminal's width)
LIVE_LINE = r"^[✓✗•] \S+ → [a-z0-9-]+ ([a-z-]+ \d+\.\ds( calibrate \d+/\d+)?( [━╺]+ \d+/\d+ runs)?|(done|failed) \d+\.\ds)( .*)?$"
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
    r"^\[\d+/\d+\] \S+: \d+ runs after \d+ warm-up( \d+\.\d\d s)?$",  # bench progress (export --bench: timed)
    r"^\s*\S+: one row per target\s*$",  # export --to's table title
    r"^\s*host benchmark \(min of N round trips, ms\)\s*$",  # bench table title, frame and rows
    r"^[┏┃┡│└]",
    r"^\s*[┃│]",
    r"^note: \S+: ",
    r"^(SKIPPED|LOAD_FAILED|RUN_FAILED): ",
    LIVE_LINE,  # a frame of the live display (terminal only)
)]
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")

EXPORTS = [["onnx"], ["tflite", "--int8"], ["coreml"], ["tensorrt"]]


def _env() -> dict[str, str]:
    """A user's shell: no -v, no CI (CI itself sets it; the live display is for a person's terminal)."""
    drop = ("MOBEXPORT_VERBOSE", "TQDM_DISABLE", "TF_CPP_MIN_LOG_LEVEL", "CI")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env["COLUMNS"], env["TERM"] = "100", "xterm-256color"
    return env


def _piped(args: list[str]) -> tuple[int, str]:
    p = subprocess.run([sys.executable, "-m", "mobexport.cli", *args], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, env=_env(), cwd=ROOT, timeout=600)
    return p.returncode, p.stdout.decode("utf-8", "replace")


def _on_pty(args: list[str], limit: float = 600) -> tuple[int, str]:
    """Run on a pseudo-terminal; a command still drawing after ``limit`` seconds is killed and the test fails with
    what it drew (a hung display must fail the test, not hold the worker until CI's own limit)."""
    master, slave = pty.openpty()
    p = subprocess.Popen([sys.executable, "-m", "mobexport.cli", *args], stdin=slave, stdout=slave, stderr=slave,
                         env=_env(), cwd=ROOT, close_fds=True)
    os.close(slave)
    chunks, deadline = [], time.monotonic() + limit
    while True:
        if not select.select([master], [], [], max(0.0, deadline - time.monotonic()))[0]:
            p.kill()
            p.wait()
            os.close(master)
            pytest.fail(f"still running after {limit:.0f} s; it drew:\n" + b"".join(chunks).decode("utf-8", "replace"))
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    return p.wait(timeout=60), b"".join(chunks).decode("utf-8", "replace")


def _lines(text: str) -> list[str]:
    """What was written, line by line, every redraw of the live display (after a carriage return) its own."""
    return re.split(r"\r\n|\n|\r", ANSI.sub("", text))


def _foreign(text: str) -> list[str]:
    return [ln for ln in _lines(text) if not any(p.match(ln) for p in OURS)]


def _check_progress(text: str, how, step: str) -> None:
    """Piped: a plain line per finished step with its time, no redraw; on a terminal: the live display."""
    lines = _lines(text)
    if how is _piped:
        assert "\r" not in text and "\x1b[" not in text, text
        assert any(re.fullmatch(rf"build → [a-z0-9-]+: {step} \d+\.\d\d s", ln) for ln in lines), text
        assert not any(re.match(LIVE_LINE, ln) for ln in lines), text
    else:
        assert any(re.match(rf"• build → [a-z0-9-]+ {step} \d+\.\ds", ln) for ln in lines), text
        assert any(re.match(r"✓ build → [a-z0-9-]+ done \d+\.\ds", ln) for ln in lines), text


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
    _check_progress(text, how, "convert")
    if how is _on_pty and cmd[-1] == "--int8":
        assert re.search(r"• build → tflite-w8a8 convert \d+\.\ds calibrate \d+/\d+", ANSI.sub("", text)), text
    if cmd == ["coreml"]:  # the converter's own notices are ours: hidden backends must not hide them
        assert any(ln.startswith("ANE lint: ") for ln in _lines(text)), text
        assert "notice: coreml-fp16 is UNVALIDATED_NO_RUNTIME" in text, text


@pytest.mark.parametrize("how", [_piped, _on_pty], ids=["piped", "pty"])
def test_bench_console_holds_only_our_lines(onnx_export, how):
    rc, text = how(["bench", str(onnx_export), "--runs", "2000", "--warmup", "2", "--no-store"])
    assert rc == 0, text
    assert _foreign(text) == [], text
    if how is _on_pty:  # a bar over the timed runs, up to all of them
        assert re.search(r"• build → onnx-fp32 bench \d+\.\ds [━╺]{20} 2000/2000 runs", ANSI.sub("", text)), text
    else:
        assert "\r" not in text and "\x1b[" not in text and "runs after 2 warm-up" in text, text


@pytest.mark.parametrize("how", [_piped, _on_pty], ids=["piped", "pty"])
def test_export_to_many_with_bench_console(how, tmp_path):
    """`export --to A,B --bench`: each target's steps (calibrate n/N for int8), then a bar over its timed runs on a
    terminal; plain lines piped; the summary table either way; no backend line."""
    rc, text = how(["export", TINY, "--input-size", "64", "--to", "onnx,tflite-w8a8", "--bench", "--runs", "1000",
                    "--warmup", "2", "--out", str(tmp_path), "--no-store"])
    assert rc == 0, text
    assert _foreign(text) == [], text
    _check_progress(text, how, "validate")
    plain = ANSI.sub("", text)
    assert re.search(r"^[┃│] onnx-fp32 +[┃│] OK", plain, re.M) and re.search(r"^[┃│] tflite-w8a8 ", plain, re.M)
    if how is _on_pty:
        for target in ("onnx-fp32", "tflite-w8a8"):
            assert re.search(rf"• build → {target} bench \d+\.\ds [━╺]{{20}} 1000/1000 runs", plain), text
        assert re.search(r"• build → tflite-w8a8 convert \d+\.\ds calibrate \d+/\d+", plain), text


def test_verbose_shows_backend_output(tmp_path):
    """The same export with -v: the backends' own lines are there (the capture hides them; it does not lose
    them), so the allow-list above is really checking something."""
    rc, text = _piped(["-v", "onnx", TINY, "--input-size", "64", "--out", str(tmp_path)])
    assert rc == 0, text
    assert _foreign(text), text


def test_errors_still_reach_the_user(tmp_path):
    rc, text = _piped(["onnx", f"{ROOT / 'tests' / 'fixtures' / 'custom_model.py'}:raises", "--out", str(tmp_path)])
    assert rc == 2 and re.search(r"^error: ", text, re.M), text
