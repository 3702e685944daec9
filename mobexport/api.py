"""The public Python API; the CLI calls the same functions."""

from __future__ import annotations

import os

from mobexport.exporter import registry
from mobexport.exporter.errors import UsageError
from mobexport.exporter.passes.reparameterize import reparameterize
from mobexport.exporter.specs import ModelSpec

__all__ = ["create_model", "get_spec", "list_models", "reparameterize"]


def list_models(pattern: str = "*") -> list[str]:
    return registry.list_models(pattern)


def get_spec(name: str) -> ModelSpec:
    return registry.get_spec(name)


def create_model(name: str, *, weights: str | os.PathLike | None = None, num_classes: int = 1000):
    """Build the train-time form of ``name`` (canonical or timm alias), optionally loading local weights.

    ``weights`` is a ``.pt/.pth`` (read with ``weights_only=True``) or ``.safetensors`` file in our layout
    or a reference layout of the family, train or deploy form. A deploy-form checkpoint returns a model
    already re-parameterized.
    """
    from mobexport.exporter.weights import load_weights

    if not isinstance(num_classes, int) or num_classes < 1:
        raise UsageError(f"num_classes must be a positive integer, got {num_classes!r}")
    spec = registry.get_spec(name)
    model = registry.get_builder(name)(num_classes=num_classes)
    model.eval()
    if weights is not None:
        model.loaded_from = load_weights(model, spec.family, weights)
    return model
