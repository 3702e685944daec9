"""Quantization schemes: what a target's ``<scheme>`` suffix means. ``--int8`` is w8a8 (full integer) for
every format; weight-only int8 is the separately named ``w8``."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Scheme:
    name: str
    precision: str  # the validator's policy key: fp32 | fp16 | int8 | w8
    weight_bits: int
    activation_bits: int  # 32 = float activations
    needs_calibration: bool
    description: str


SCHEMES: dict[str, Scheme] = {
    s.name: s
    for s in (
        Scheme("fp32", "fp32", 32, 32, False, "float32 weights and activations"),
        Scheme("fp16", "fp16", 16, 16, False, "float16 weights (and activations where the runtime computes in fp16)"),
        Scheme("w8a8", "int8", 8, 8, True,
               "full integer: int8 per-channel weights, int8 activations calibrated on real images"),
        Scheme("w8", "w8", 8, 32, False, "int8 weights only, float activations"),
    )
}

# CLI flag -> scheme (the flags are mutually exclusive)
FLAG_SCHEMES: dict[str, str] = {"fp16": "fp16", "int8": "w8a8", "w8": "w8"}


def get_scheme(name: str) -> Scheme:
    from mobexport.exporter.errors import UnknownNameError

    if name not in SCHEMES:
        raise UnknownNameError("scheme", name, SCHEMES)
    return SCHEMES[name]
