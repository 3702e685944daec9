"""The MobexportError tree. Each error carries the process exit code the CLI returns for it.

Exit codes (documented in the README):
  0 ok · 1 fidelity mismatch · 2 usage (unknown model/target, bad flags, bad input files)
  3 target/backend unavailable · 4 conversion failure · 5 internal error
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class MobexportError(Exception):
    exit_code = 5

    def __init__(self, message: str, *, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\n  hint: {self.hint}"


class UsageError(MobexportError):
    """Bad user input: unknown names, bad flag combinations, unreadable files."""

    exit_code = 2


class UnknownNameError(UsageError):
    """An unknown model/target/... name, with did-you-mean suggestions and the full list of choices."""

    def __init__(self, kind: str, name: str, choices: Iterable[str], *, extra_names: Iterable[str] = ()):
        self.kind, self.name = kind, name
        self.choices = sorted(set(choices))
        pool = sorted(set(self.choices) | set(extra_names))
        self.suggestions = difflib.get_close_matches(name, pool, n=3, cutoff=0.5)
        if not self.suggestions:
            low = name.lower()
            self.suggestions = [c for c in self.choices if low in c.lower() or c.lower() in low][:3]
        msg = f"unknown {kind} '{name}'."
        if self.suggestions:
            msg += " Did you mean: " + ", ".join(self.suggestions) + "?"
        msg += f"\n  available {kind}s: " + ", ".join(self.choices)
        super().__init__(msg)


class WeightsError(UsageError):
    """A corrupt, unreadable or mismatched checkpoint. Nothing is loaded when this is raised."""


class CalibrationError(UsageError):
    """Empty, unreadable or too-small calibration data."""


class TargetUnavailableError(MobexportError):
    """A backend is missing on this host. Carries an install hint."""

    exit_code = 3


class ConversionError(MobexportError):
    """A step of the export pipeline failed; names the step, model and target."""

    exit_code = 4

    def __init__(self, message: str, *, step: str = "", model: str = "", target: str = "", hint=None):
        self.step, self.model, self.target = step, model, target
        where = "/".join(x for x in (model, target, step) if x)
        super().__init__(f"[{where}] {message}" if where else message, hint=hint)


class UnsupportedOpError(ConversionError):
    """The backend cannot express an operator; names the op and the layer it comes from."""

    def __init__(self, op: str, layer: str, *, backend: str, **kw):
        self.op, self.layer, self.backend = op, layer, backend
        super().__init__(f"{backend} does not support op '{op}' (from layer '{layer}')", **kw)


class ValidationError(MobexportError):
    """An artifact's outputs do not match PyTorch (or a structural check failed). Carries the report."""

    exit_code = 1

    def __init__(self, message: str, report=None):
        super().__init__(message)
        self.report = report


class InvariantError(MobexportError):
    """A pass's pre/postcondition does not hold (e.g. BatchNorm left after folding): a bug, not user error."""

    exit_code = 5
