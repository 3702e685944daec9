"""Command line: ``mobexport <command> …``. Parses, calls the library, renders. Exit codes:
0 ok · 1 fidelity mismatch · 2 usage error · 3 backend unavailable · 4 conversion failure · 5 internal error.

This module and the command modules' ``add_parser`` functions import nothing heavy, so ``--help`` is instant;
each command imports torch and its backend inside ``run``.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

# (command, module under mobexport.commands, one-line help); one format subcommand per registered converter
# (``format_commands``) goes after list/info
COMMANDS: list[tuple[str, str, str]] = [
    ("list", "zoo", "list the models of the zoo"),
    ("info", "zoo", "show a model's spec, measured vs published params/MACs"),
    ("export", "export", "export a model to several targets (or all) in one go, optionally benchmark, one table"),
    ("bench", "bench", "time artifacts on this host (min-of-N round trips), store results"),
    ("results", "results", "show stored results as a table, JSON or plots"),
    ("eval", "eval", "top-1/top-5 of artifacts and their float model on a labelled folder or CSV, stored"),
    ("serve", "serve", "HTTP server for the companion apps: artifacts out, results in"),
    ("sweep", "sweep", "the models x targets sweep on a Ray cluster (local by default), resumable, one database"),
    ("roofline", "analysis", "roofline latency model with a ridge-point sweep"),
    ("predict", "analysis", "predict a model's latency from a per-block lookup table"),
    ("lut", "analysis", "build per-block latency lookup tables"),
]


def format_commands() -> list[tuple[str, str, str]]:
    """``mobexport <format>`` for every registered converter (importing them is cheap: no backend, no torch)."""
    from mobexport.converters import formats, get_converter

    return [(f, "export", get_converter(f).summary or f"export to {f}") for f in formats()]


def build_parser() -> argparse.ArgumentParser:
    from mobexport import __version__

    parser = argparse.ArgumentParser(
        prog="mobexport",
        description="Export mobile vision backbones from PyTorch to phones, validate and benchmark them.",
        epilog="exit codes: 0 ok, 1 fidelity mismatch, 2 usage error, 3 backend unavailable, "
               "4 conversion failure, 5 internal error",
    )
    parser.add_argument("--version", action="version", version=f"mobexport {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="show the backends' own logs, warnings and progress bars (hidden by default)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module, help_text in COMMANDS[:3] + format_commands() + COMMANDS[3:]:
        mod = importlib.import_module(f"mobexport.commands.{module}")
        p = sub.add_parser(name, help=help_text, description=help_text)
        mod.add_parser(name, p)
        p.set_defaults(_module=module)
    return parser


def quiet_backends() -> None:
    """Hide what the backends print on their own (TF/absl info logs, torchao's optional-kernel notices,
    deprecation warnings, tqdm bars): set before any backend is imported. Our own notices, errors and
    results are unaffected; ``--verbose`` keeps everything."""
    import logging
    import warnings

    for key, value in (("TF_CPP_MIN_LOG_LEVEL", "2"), ("GLOG_minloglevel", "2"), ("TQDM_DISABLE", "1"),
                       ("LITERT_TORCH_SHOW_PROGRESS", "n")):
        os.environ.setdefault(key, value)
    for category in (FutureWarning, DeprecationWarning, UserWarning):
        warnings.filterwarnings("ignore", category=category)
    for name in ("torchao", "coremltools", "onnxscript", "torch.onnx", "torch.utils._pytree", "absl"):
        logging.getLogger(name).setLevel(logging.ERROR)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # argparse: --help → 0, bad usage → 2
        return int(e.code or 0)
    if not args.command:
        parser.print_help()
        return 2
    if args.verbose:
        os.environ["MOBEXPORT_VERBOSE"] = "1"
    else:
        quiet_backends()
    from mobexport.exporter.errors import MobexportError

    mod = importlib.import_module(f"mobexport.commands.{args._module}")
    try:
        check_model_names(args)
        if args.verbose:
            return int(mod.run(args) or 0)
        from mobexport.commands._common import fd_guard

        # native code's writes to fds 1/2 stay hidden; Python's sys.stdout/stderr reach the user
        with fd_guard(whole_process=argv is None):
            return int(mod.run(args) or 0)
    except MobexportError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def check_model_names(args) -> None:
    """Zoo names given on the command line are checked against the committed name index before any command
    imports torch: a typo is answered at once, with did-you-mean (factory references are the user's code)."""
    from mobexport.exporter.registry import check_name
    from mobexport.exporter.source import is_factory_ref

    for name in [getattr(args, "model", None), *(getattr(args, "models", None) or [])]:
        if isinstance(name, str) and not is_factory_ref(name):
            check_name(name)


if __name__ == "__main__":
    sys.exit(main())
