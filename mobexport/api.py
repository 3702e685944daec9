"""The public Python API; the CLI calls the same functions."""

from __future__ import annotations

import os

from mobexport.exporter import registry
from mobexport.exporter.passes.reparameterize import reparameterize
from mobexport.exporter.specs import ModelSpec

__all__ = ["create_model", "get_spec", "list_models", "reparameterize"]


def list_models(pattern: str = "*") -> list[str]:
    return registry.list_models(pattern)


def get_spec(name: str, *, num_classes: int | None = None,
             input_size: tuple[int, int] | int | str | None = None) -> ModelSpec:
    """The spec of ``name``; with ``num_classes`` / ``input_size`` (S, (H, W) or "HxW") the spec for that shape
    (``ModelSpec.with_shape``): UsageError for a bad class count or a size the family does not accept."""
    return registry.get_spec(name).with_shape(num_classes=num_classes, input_size=input_size)


def create_model(name: str, *, weights: str | os.PathLike | None = None, num_classes: int = 1000,
                 input_size: tuple[int, int] | int | str | None = None):
    """Build the train-time form of ``name`` (canonical or timm alias), optionally loading local weights.

    ``num_classes`` sets the classifier's outputs; ``input_size`` (S, (H, W) or "S"/"HxW"; default: the
    registered size) the input the model is built and exported for. Both are checked before anything is built
    (UsageError naming the rule). The model carries its shaped spec as ``model.mobexport_spec``.

    ``weights`` is a ``.pt/.pth`` (read with ``weights_only=True``) or ``.safetensors`` file in our layout
    or a reference layout of the family, train or deploy form. A deploy-form checkpoint returns a model
    already re-parameterized.
    """
    from mobexport.exporter.weights import load_weights

    spec = get_spec(name, num_classes=num_classes, input_size=input_size)
    model = registry.get_builder(name)(num_classes=spec.num_classes)
    model.eval()
    if weights is not None:
        model.loaded_from = load_weights(model, spec.family, weights)
    model.mobexport_spec = spec
    return model
