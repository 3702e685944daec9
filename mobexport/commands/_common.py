"""Rendering helpers shared by commands."""

from __future__ import annotations

import contextlib
import json
import os
import sys


def print_json(obj) -> None:
    json.dump(obj, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")


def console(stderr: bool = False):
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=True)  # paths and numbers stay on one line


def notice(msg: str) -> None:
    """A visible notice on stderr (keeps stdout clean for --json)."""
    print(msg, file=err_stream())


# ---------------------------------------------------------------- progress lines and the backends' console output

_saved_err: list = []  # while backend output is captured: the stream that still reaches the user's stderr


def err_stream():
    """Where our own progress and notices go: the user's stderr, also while a backend call is captured."""
    return _saved_err[-1] if _saved_err else sys.stderr


class StepPrinter:
    """A ``progress`` callback for ``export()`` / ``run_benchmarks()``: each message starts a step; one plain
    line per finished step with its time (``model → target: step 1.23 s``), so nothing redraws when piped; while
    a step runs, a heartbeat line about every ``heartbeat_s`` seconds (``model → target: convert … 20 s so far``)."""

    def __init__(self, enabled: bool = True, heartbeat_s: float = 10.0):
        self.enabled, self.heartbeat_s = enabled, heartbeat_s
        self._step: str | None = None
        self._t0 = 0.0
        self._stop = None

    def __call__(self, msg: str) -> None:
        import threading
        import time

        self.done()
        self._step, self._t0 = msg, time.perf_counter()
        if self.enabled and self.heartbeat_s > 0:
            self._stop = threading.Event()
            threading.Thread(target=self._beat, args=(msg, self._t0, self._stop), daemon=True).start()

    def _beat(self, msg: str, t0: float, stop) -> None:
        import time

        while not stop.wait(self.heartbeat_s):
            try:
                print(f"{msg} … {time.perf_counter() - t0:.0f} s so far", file=err_stream(), flush=True)
            except (ValueError, OSError):  # the stream closed as the step ended
                return

    def done(self, failed: bool = False) -> None:
        """Print the step in progress (if any) with its time."""
        import time

        if self._stop is not None:
            self._stop.set()
            self._stop = None
        if self._step is not None and self.enabled:
            dt = time.perf_counter() - self._t0
            print(f"{self._step} {'failed after ' if failed else ''}{dt:.2f} s", file=err_stream(), flush=True)
        self._step = None


class _Router:
    """``sys.stdout`` / ``sys.stderr`` during a captured backend call: a write made by mobexport's own code (a
    converter's notice, the ANE lint summary) goes to the user's stream; any other (warnings, logging, tqdm, a
    backend's print) goes to the capture file. Not a terminal, so progress bars do not draw."""

    def __init__(self, ours, theirs):
        self.ours, self.theirs = ours, theirs
        self.encoding, self.errors = "utf-8", "replace"

    closed = False  # a handler that kept this stream (absl's) may flush or close it at exit: never an error

    def write(self, text: str) -> int:
        caller = sys._getframe(1).f_globals.get("__name__", "")
        try:
            return (self.ours if caller.split(".", 1)[0] == "mobexport" else self.theirs).write(text)
        except ValueError:  # written after the capture ended (the file is closed): dropped
            return len(text)

    def flush(self) -> None:
        for s in (self.ours, self.theirs):
            with contextlib.suppress(ValueError, OSError):
                s.flush()

    def close(self) -> None:
        pass

    def fileno(self) -> int:
        return self.theirs.fileno()

    def isatty(self) -> bool:
        return False

    def writable(self) -> bool:
        return True


def _user_stream(stream, fd: int, saved_fd: int):
    """The user's stream for ``fd`` while that fd is redirected: a new file on the saved copy when ``stream``
    wrote to the fd itself, else ``stream`` (e.g. a test's capture object)."""
    if _is_fd(stream, fd):
        return os.fdopen(os.dup(saved_fd), "w", buffering=1, encoding="utf-8", errors="replace")
    return stream


@contextlib.contextmanager
def backend_output(printer: StepPrinter | None = None):
    """Around a backend call (export, bench): what the backends print — from Python or from C++ straight to
    file descriptors 1 and 2 — goes to a temporary file instead of the console, unless ``-v``; what mobexport's
    own modules print still reaches the user (``_Router``). When the call raises, the tail of the captured
    output is shown on stderr and the error goes on. ``printer`` gets its last step closed (with "failed"
    when the call raised)."""
    if os.environ.get("MOBEXPORT_VERBOSE"):
        try:
            yield
        except BaseException:
            if printer:
                printer.done(failed=True)
            raise
        if printer:
            printer.done()
        return
    import logging
    import tempfile

    logging.disable(logging.WARNING)  # backends' log records (torch.onnx's "torchvision is not installed", ...)
    with tempfile.TemporaryFile(mode="w+b") as tmp:
        old = sys.stdout, sys.stderr
        for s in old:
            s.flush()
        saved = os.dup(1), os.dup(2)
        user = _user_stream(old[0], 1, saved[0]), (getattr(printer, "stream", None)  # the live display's
                                                    or _user_stream(old[1], 2, saved[1]))
        os.dup2(tmp.fileno(), 1)
        os.dup2(tmp.fileno(), 2)
        theirs = os.fdopen(os.dup(tmp.fileno()), "w", buffering=1, encoding="utf-8", errors="replace")
        sys.stdout, sys.stderr = _Router(user[0], theirs), _Router(user[1], theirs)
        _saved_err.append(user[1])
        failed = True
        try:
            yield
            failed = False
        finally:
            if printer:
                printer.done(failed=failed)
            _saved_err.pop()
            sys.stdout.flush()
            theirs.close()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)
            sys.stdout, sys.stderr = old
            for u, o in zip(user, old, strict=True):
                if u is not o:
                    u.close()
            logging.disable(logging.NOTSET)
            if failed:  # above the live display on a terminal (a redraw would cover it otherwise)
                _show_tail(tmp, getattr(printer, "stream", None) or sys.stderr)


def _is_fd(stream, fd: int) -> bool:
    try:
        return stream.fileno() == fd
    except (AttributeError, OSError, ValueError):
        return False


def _show_tail(tmp, stream=None, lines: int = 20) -> None:
    stream = stream or sys.stderr
    tmp.seek(0)
    text = tmp.read().decode("utf-8", "replace").splitlines()
    if text:
        print(f"backend output (last {min(lines, len(text))} of {len(text)} lines; -v shows it all):",
              file=stream)
        print("\n".join("  | " + t for t in text[-lines:]), file=stream, flush=True)


_native_log: list = []  # the file that holds what native code wrote to fds 1/2 (kept open until exit)


@contextlib.contextmanager
def fd_guard(whole_process: bool = True):
    """For a whole command without ``-v``: file descriptors 1 and 2 go to a temporary file, so what native code
    (TF/absl, oneDNN, TensorRT, coremltools' C++ side) writes straight to them never reaches the console;
    Python's ``sys.stdout`` / ``sys.stderr`` keep writing to the user's terminal or pipe (our output, and the
    backends' Python output that ``quiet_backends`` and ``backend_output`` already hide). On an exception the
    tail of the captured output is shown.

    For the whole process (the console entry point, sys.stdout/sys.stderr on fds 1/2) the redirection stays
    until the process exits, so native teardown messages are hidden too; otherwise (``main(argv)`` called in
    process, e.g. by a test) the fds are restored."""
    import tempfile

    real = whole_process and _is_fd(sys.stdout, 1) and _is_fd(sys.stderr, 2)
    tmp = tempfile.TemporaryFile(mode="w+b")
    old = sys.stdout, sys.stderr
    for s in old:
        s.flush()
    saved = os.dup(1), os.dup(2)
    if real:
        sys.stdout = os.fdopen(saved[0], "w", buffering=1, encoding=old[0].encoding, errors="replace")
        sys.stderr = os.fdopen(saved[1], "w", buffering=1, encoding=old[1].encoding, errors="backslashreplace")
        _native_log.append(tmp)
    os.dup2(tmp.fileno(), 1)
    os.dup2(tmp.fileno(), 2)
    try:
        yield
    except BaseException:
        _show_tail(tmp)
        raise
    finally:
        if not real:
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)
            tmp.close()
