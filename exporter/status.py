"""The one vocabulary of statuses: manifests, validation and benchmark results, the conversion matrix and the
apps all use these values (stored as the string value). tests/test_status.py checks the result and manifest
schemas' enums, the apps' enums and every status the scripts record against this enum."""

from __future__ import annotations

from enum import Enum


class Status(str, Enum):
    OK = "OK"
    CONVERT_FAILED = "CONVERT_FAILED"
    LOAD_FAILED = "LOAD_FAILED"
    RUN_FAILED = "RUN_FAILED"
    MISMATCH = "MISMATCH"
    UNVALIDATED_NO_RUNTIME = "UNVALIDATED_NO_RUNTIME"
    SKIPPED = "SKIPPED"

    @property
    def is_pass(self) -> bool:
        return self is Status.OK

    def __str__(self) -> str:  # so f-strings and JSON show the plain value
        return self.value

    @classmethod
    def of_error(cls, err: BaseException) -> Status:
        """The status an export that raised ``err`` is recorded with: its target cannot be built on this host →
        SKIPPED (the reason goes with it); the artifact failed its check → MISMATCH; any other failure (the
        conversion, a step, a bad option) → CONVERT_FAILED: no artifact was written."""
        from .errors import TargetUnavailableError, ValidationError

        if isinstance(err, TargetUnavailableError):
            return cls.SKIPPED
        if isinstance(err, ValidationError):
            return cls.MISMATCH
        return cls.CONVERT_FAILED
