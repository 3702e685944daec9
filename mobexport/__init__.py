"""mobexport — PyTorch mobile backbones to Core ML, LiteRT, ONNX and TensorRT, verified and benchmarked.

Public API (imported lazily so that ``import mobexport`` and ``mobexport --help`` do not load torch)::

    mobexport.list_models(pattern="*") -> list[str]
    mobexport.create_model(name, *, weights=None, num_classes=1000) -> nn.Module   # train-time form
    mobexport.get_spec(name) -> ModelSpec
    mobexport.reparameterize(model) -> nn.Module                                      # deploy form, in place
    mobexport.evaluate(artifacts, data, *, db=None, ...) -> list[dict]               # accuracy on labelled data
"""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["create_model", "evaluate", "get_spec", "list_models", "reparameterize", "__version__"]


def __getattr__(name: str):
    if name in ("create_model", "get_spec", "list_models", "reparameterize"):
        from . import api

        return getattr(api, name)
    if name == "evaluate":
        from .benchmarks.evaluate import evaluate

        return evaluate
    raise AttributeError(f"module 'mobexport' has no attribute {name!r}")
