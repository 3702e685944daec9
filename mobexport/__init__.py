"""mobexport — PyTorch mobile backbones to Core ML, LiteRT, ONNX and TensorRT, verified and benchmarked.

Public API (imported lazily so that ``import mobexport`` and ``mobexport --help`` do not load torch)::

    mobexport.list_models(pattern="*") -> list[str]
    mobexport.create_model(name, *, weights=None, num_classes=1000, input_size=None) -> nn.Module  # train form
    mobexport.get_spec(name, *, num_classes=None, input_size=None) -> ModelSpec
    mobexport.reparameterize(model) -> nn.Module                                      # deploy form, in place
    mobexport.export(model, target, *, weights=None, num_classes=None, input_size=None, input_shape=None,
                     labels=None, preprocessing=None, out_dir="exports", ...) -> ExportResult
                     # model: a zoo name, "file.py:factory" / "package.module:factory", or any nn.Module
    mobexport.export_all(model, targets="all", *, bench=False, runs=100, ...) -> list[TargetRecord]
                     # every target (ids, format names or "all") in one go, past failures; optionally timed
    mobexport.evaluate(artifacts, data, *, db=None, ...) -> list[dict]               # accuracy on labelled data
"""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["create_model", "evaluate", "export", "export_all", "get_spec", "list_models", "reparameterize", "__version__"]


def __getattr__(name: str):
    if name in ("create_model", "get_spec", "list_models", "reparameterize"):
        from . import api

        return getattr(api, name)
    if name == "export":
        from .converters.pipeline import export

        return export
    if name == "export_all":
        from .benchmarks.export_all import export_all

        return export_all
    if name == "evaluate":
        from .benchmarks.evaluate import evaluate

        return evaluate
    raise AttributeError(f"module 'mobexport' has no attribute {name!r}")
