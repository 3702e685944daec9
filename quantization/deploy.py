"""The model an int8 artifact is converted from — shared by every full-integer converter (TFLite, TensorRT).

A *copy* of the float deploy model with empirical bias correction of int8 weight rounding (``bias_correction``).
The float model itself stays the validation reference. With ``range_search`` (opt-in ``--range-search``) the loss-aware activation ranges of ``range_search`` are
searched on that copy against the float model; the backend applies the returned plan to its own tensors.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from torch import nn

if TYPE_CHECKING:
    from .range_search import RangePlan


def int8_source_model(model: nn.Module, images: list[np.ndarray], range_search: bool = False,
                      symmetric: bool = False) -> tuple[nn.Module, dict, RangePlan | None]:
    """(model to convert, report for the manifest's ``quantization`` entry, range plan or None);
    ``symmetric``: the backend's activations are symmetric int8 (TensorRT)."""
    from .bias_correction import bias_corrected

    report: dict = {}
    source, report["bias_correction"] = bias_corrected(model, images)
    plan = None
    if range_search:
        from .range_search import search_ranges

        plan = search_ranges(source, model, images, symmetric=symmetric)
        report["range_search"] = plan.report
    return source, report, plan
