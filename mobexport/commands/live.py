"""The live console display on a terminal: one line per target (``model → target``) with the step it is in and its
elapsed time, ``calibrate n/N`` while an int8 export calibrates, a bar over the timed runs of a benchmark, and
the steps it finished with their times. Piped, in CI (``$CI``), with ``TERM=dumb`` or ``-v``, ``progress()``
gives the plain ``StepPrinter`` instead: one line per finished step, nothing that redraws.

The display is a ``rich.live.Live`` on its own copy of the terminal's file descriptor, so it keeps drawing while a
backend call has file descriptors 1 and 2 redirected (``backend_output``); what mobexport itself prints during
such a call (a notice) is printed above the display (``LiveSteps.stream``). Every drawn line is one row, cut
to the terminal's width at its end (the finished steps), never in the target's name or its state.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from dataclasses import dataclass, field

from ._common import StepPrinter

NAMES = {"reparameterize": "re-parameterize", "fold_batchnorm": "fold", "equivalence_check": "check",
         "write_manifest": "write"}  # the pipeline's step ids as the display names them
DONE, FAILED, RUNNING = "✓", "✗", "•"
BAR = 20  # characters of the bar over the timed runs


def live_terminal(stream=None) -> bool:
    """Whether ``stream`` (default stderr) is a terminal that may redraw: not piped, not CI, not TERM=dumb, not -v
    (with -v the backends' own output interleaves; plain lines stay readable)."""
    stream = stream or sys.stderr
    try:
        tty = stream.isatty()
    except (AttributeError, ValueError):
        return False
    return bool(tty) and os.environ.get("TERM") != "dumb" and not os.environ.get("CI") \
        and not os.environ.get("MOBEXPORT_VERBOSE")


def progress(stream=None):
    """The progress callback for a command: ``LiveSteps`` on a live terminal, else a ``StepPrinter``. Use it as a
    context manager (``with progress() as p:``); both take ``p(step message)``, ``p.done()``, ``p.runs(n, N)``
    and ``p.count(what, n, N)``."""
    return LiveSteps(stream) if live_terminal(stream) else PlainSteps()


class PlainSteps(StepPrinter):
    """``StepPrinter`` with the live display's interface: runs and counts draw nothing (piped, nothing redraws)."""

    def __enter__(self) -> PlainSteps:
        return self

    def __exit__(self, *exc) -> None:
        self.done(failed=exc[0] is not None)

    def runs(self, done: int, total: int) -> None:
        pass

    def count(self, what: str, n: int, total: int) -> None:
        pass


@dataclass
class _Row:
    label: str  # "model → target"
    steps: list[tuple[str, float]] = field(default_factory=list)  # finished: (name, seconds)
    current: str | None = None
    t0: float = 0.0
    started: float = field(default_factory=time.perf_counter)
    detail: str = ""  # calibrate 12/64
    bar: tuple[int, int] | None = None  # timed runs: (done, total)
    failed: bool = False


class LiveSteps:
    """The live display (see the module docstring); a ``progress`` callback for ``export()``/``export_all``
    (``"model → target: step"``) and ``run_benchmarks`` (``"[i/N] model/target: R runs after W warm-up"``)."""

    def __init__(self, stream=None):
        from rich.console import Console
        from rich.live import Live

        stream = stream or sys.stderr
        self._file = os.fdopen(os.dup(stream.fileno()), "w", buffering=1, encoding="utf-8", errors="replace")
        self.console = Console(file=self._file, highlight=False, force_terminal=True)
        self._rows: dict[str, _Row] = {}
        self._now: _Row | None = None
        self._lock = threading.RLock()
        self._live = Live(self, console=self.console, refresh_per_second=8, transient=False,
                          redirect_stdout=False, redirect_stderr=False)
        self.stream = _Above(self)  # our own prints during a captured backend call go above the display

    # -- the callback interface
    def __call__(self, msg: str) -> None:
        with self._lock:
            self.done()
            label, step = _parse(msg)
            row = self._rows.setdefault(label, _Row(label))
            row.current, row.t0, row.detail, row.failed = step, time.perf_counter(), "", False
            self._now = row
        self._refresh()  # every step is drawn at least once, however short

    def _refresh(self) -> None:
        """Draw now. Never called holding ``_lock``: rich's refresh thread holds the Live's lock while it renders,
        and rendering (``__rich__``) takes ``_lock`` — taking them in the other order here deadlocks."""
        if self._live.is_started:
            self._live.refresh()

    def done(self, failed: bool = False) -> None:
        with self._lock:
            row, self._now = self._now, None
            if row is None or row.current is None:
                return
            row.steps.append((row.current, time.perf_counter() - row.t0))
            row.current, row.detail, row.failed = None, "", failed

    def runs(self, done: int, total: int) -> None:
        with self._lock:
            if self._now is None:
                return
            self._now.bar = (done, total)
        if done >= total:  # draw the full bar now: the step may end before the next periodic refresh
            self._refresh()

    def count(self, what: str, n: int, total: int) -> None:
        with self._lock:
            if self._now is None:
                return
            self._now.detail = f"{what} {n}/{total}"  # kept until the step ends
        if n >= total:
            self._refresh()

    def __enter__(self) -> LiveSteps:
        from mobexport.exporter.progress import listening

        self._listen = listening(self.count)
        self._listen.__enter__()
        self._live.start()
        return self

    def __exit__(self, *exc) -> None:
        self.done(failed=exc[0] is not None)
        self._listen.__exit__(*exc)
        self._live.stop()
        self._file.close()

    # -- drawing
    def __rich__(self):
        from rich.console import Group

        with self._lock:
            return Group(*(self._line(row) for row in self._rows.values()))

    def _line(self, row: _Row):
        """One terminal line: state glyph, ``model → target``, the step in progress (or done / failed and the
        total), then the finished steps, cut at the line's end when the terminal is narrow."""
        from rich.text import Text

        finished = " · ".join(f"{_name(n)} {s:.1f}s" for n, s in row.steps)
        if row.current is None:
            total = sum(s for _, s in row.steps)
            glyph, now = (FAILED, f"failed {total:.1f}s") if row.failed else (DONE, f"done {total:.1f}s")
        else:
            glyph, now = RUNNING, f"{_name(row.current)} {time.perf_counter() - row.t0:.1f}s"
            if row.detail:
                now += f" {row.detail}"
            if row.bar is not None and row.current == "bench":
                done, total = row.bar
                fill = round(BAR * done / max(total, 1))
                now += f" {'━' * fill}{'╺' * (BAR - fill)} {done}/{total} runs"
        line = Text.assemble(f"{glyph} {row.label} ", (now, "bold"), "  ", (finished, "dim"))
        line.no_wrap, line.overflow = True, "ellipsis"
        return line


class _Above:
    """A text stream that prints whole lines above the live display (mobexport's own notices)."""

    encoding, errors = "utf-8", "replace"

    def __init__(self, live: LiveSteps):
        self._live, self._buf = live, ""

    def write(self, text: str) -> int:
        from rich.text import Text

        self._buf += text
        *lines, self._buf = self._buf.split("\n")
        for line in lines:
            self._live.console.print(Text(line), soft_wrap=True)
        return len(text)

    def flush(self) -> None:
        if self._buf:
            self.write("\n")

    def close(self) -> None:
        self.flush()

    def isatty(self) -> bool:
        return False

    def writable(self) -> bool:
        return True


def _parse(msg: str) -> tuple[str, str]:
    """("model → target", step) of a step message; a bench message is the artifact's "bench" step."""
    if msg.startswith("[") and "] " in msg and ": " in msg:  # [1/3] model/target: 100 runs after 10 warm-up
        label = msg.split("] ", 1)[1].split(": ", 1)[0]
        return label.replace("/", " → ", 1), "bench"
    label, _, step = msg.rpartition(": ")
    return (label, step) if label else (msg, "")


def _name(step: str) -> str:
    return NAMES.get(step, step)
