"""Quantization schemes: what a target's ``<scheme>`` suffix means, and the CLI flag that selects it. The one
table of schemes: ``Target.precision`` / ``Target.needs_calibration`` and the format subcommands' precision flags
read it. ``--int8`` is w8a8 (full integer) for every format; weight-only int8 is the separately named ``w8``."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Scheme:
    name: str
    precision: str  # the validator's policy key: fp32 | fp16 | int8 | w8
    needs_calibration: bool
    flag: str | None  # the format subcommand's flag (mutually exclusive); None: the default, no flag
    help: str


SCHEMES: dict[str, Scheme] = {
    s.name: s
    for s in (
        Scheme("fp32", "fp32", False, None, "float32 weights and activations"),
        Scheme("fp16", "fp16", False, "fp16", "float16 (weights)"),
        Scheme("w8a8", "int8", True, "int8", "full integer w8a8: int8 weights, activations and I/O"),
        Scheme("w8", "w8", False, "w8", "int8 weights only (float activations)"),
    )
}

# CLI flag -> scheme (the flags are mutually exclusive)
FLAG_SCHEMES: dict[str, str] = {s.flag: s.name for s in SCHEMES.values() if s.flag}


def get_scheme(name: str) -> Scheme:
    from mobexport.exporter.errors import UnknownNameError

    if name not in SCHEMES:
        raise UnknownNameError("scheme", name, SCHEMES)
    return SCHEMES[name]
