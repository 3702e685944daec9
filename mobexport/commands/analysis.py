"""Placeholder until its issue lands: the command exists in --help and says it is not available yet."""

from __future__ import annotations

import argparse


def add_parser(name: str, p: argparse.ArgumentParser) -> None:
    p.add_argument("args", nargs=argparse.REMAINDER)


def run(args) -> int:
    from mobexport.exporter.errors import UsageError

    raise UsageError(f"'mobexport {args.command}' is not available yet")
