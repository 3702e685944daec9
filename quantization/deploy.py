"""The model an int8 artifact is converted from — shared by every full-integer converter (TFLite, TensorRT).

A *copy* of the float deploy model with (optionally) cross-layer equalization of its linear streams
(``equalization``) and then empirical bias correction of int8 weight rounding (``bias_correction``). The float
model itself stays the validation reference. Equalization is off by default: measured on the 25 held-out
photos it changed logit SQNR by +0.04 dB (MobileNetV2, TFLite), -0.9 dB (EfficientNet-Lite0, TFLite) and
±0.3 dB (MobileNetV2, TensorRT Q/DQ) — the linear bottlenecks it can reach exactly are not where int8 loses
accuracy in these nets (ReLU6 everywhere else makes it inexact); ``options["equalize"] = True`` turns it on.
With ``range_search`` (opt-in ``--range-search``) the loss-aware activation ranges of ``range_search`` are
searched on that copy against the float model; the backend applies the returned plan to its own tensors.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from torch import nn

if TYPE_CHECKING:
    from .range_search import RangePlan


def int8_source_model(model: nn.Module, images: list[np.ndarray], equalize: bool = False,
                      range_search: bool = False, symmetric: bool = False) -> tuple[nn.Module, dict, RangePlan | None]:
    """(model to convert, report for the manifest's ``quantization`` entry, range plan or None);
    ``symmetric``: the backend's activations are symmetric int8 (TensorRT)."""
    from .bias_correction import bias_corrected

    report: dict = {}
    source = model
    if equalize:
        from .equalization import equalized

        source, report["equalization"] = equalized(source, images)
    source, report["bias_correction"] = bias_corrected(source, images)
    plan = None
    if range_search:
        from .range_search import search_ranges

        plan = search_ranges(source, model, images, symmetric=symmetric)
        report["range_search"] = plan.report
    return source, report, plan
