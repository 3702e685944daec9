"""One status enum for validation and benchmark results (stored as its string value)."""

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
