"""Rendering helpers shared by commands."""

from __future__ import annotations

import json
import sys


def print_json(obj) -> None:
    json.dump(obj, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")


def console(stderr: bool = False):
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=True)  # paths and numbers stay on one line


def notice(msg: str) -> None:
    """A visible notice on stderr (keeps stdout clean for --json)."""
    print(msg, file=sys.stderr)
