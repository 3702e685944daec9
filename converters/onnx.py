"""ONNX converter (target ``onnx-fp32``): torch.onnx dynamo exporter at opset 18 into one self-contained file
(``external_data=False``), fixed input shape unless ``--dynamic-batch``, simplified, ONNX checker, structural checks (no
BatchNormalization; no Add in multi-branch deploy graphs). Runner: onnxruntime CPU session.

Simplifier default: onnxsim, chosen on results/simplifiers.md (``scripts/bench_export.py simplifiers``: nodes
and seconds per model for both tools): onnxsim was never worse and onnxslim grew the MobileViT graph.
``--simplifier onnxslim`` remains available.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import base, register_converter
from .base import Converter, ExportState, Target, unsupported_op_from

OPSET = 18
SIMPLIFIERS = ("onnxslim", "onnxsim", "none")
DEFAULT_SIMPLIFIER = "onnxsim"  # measured: results/simplifiers.md (scripts/bench_export.py simplifiers)
MAX_DYNAMIC_BATCH = 64


def node_counts(model) -> Counter:
    """Op type counts of an ONNX ModelProto or file."""
    if not hasattr(model, "graph"):
        import onnx

        model = onnx.load(str(model))
    return Counter(n.op_type for n in model.graph.node)


def simplify(model, simplifier: str):
    """Simplify an in-memory ModelProto with ``onnxslim`` or ``onnxsim`` (or return it unchanged)."""
    if simplifier == "onnxslim":
        import onnxslim

        return onnxslim.slim(model)
    if simplifier == "onnxsim":
        import onnxsim

        simplified, ok = onnxsim.simplify(model)
        return simplified if ok else model
    return model


def build_onnx(state: ExportState, model, out_path: Path, simplifier: str = DEFAULT_SIMPLIFIER,
               dynamic_batch: bool = False):
    """The one way an ONNX file is built (onnx-fp32, and the float ONNX TensorRT's int8 quantizes). Returns the
    ModelProto and a report."""
    import onnx
    import torch

    kw: dict[str, Any] = {}
    if dynamic_batch:
        kw["dynamic_shapes"] = ({0: torch.export.Dim("batch", min=1, max=MAX_DYNAMIC_BATCH)},)
    t0 = time.perf_counter()
    try:
        torch.onnx.export(model, (state.example_input,), str(out_path), dynamo=True, opset_version=OPSET,
                          external_data=False, input_names=["input"], output_names=["logits"], verbose=False, **kw)
    except Exception as e:  # torch.onnx raises its own exception types; map to the layer if we can
        if (err := unsupported_op_from(e, state, "torch.onnx (opset 18)")) is not None:
            raise err from e
        raise
    t1 = time.perf_counter()
    proto = onnx.load(str(out_path))
    before = sum(node_counts(proto).values())
    proto = simplify(proto, simplifier)
    onnx.save(proto, str(out_path))
    onnx.checker.check_model(str(out_path), full_check=True)
    counts = node_counts(proto)
    return proto, {"opset": OPSET, "exporter": "torch.onnx dynamo", "simplifier": simplifier,
                   "nodes_exported": before, "nodes": sum(counts.values()), "op_types": dict(sorted(counts.items())),
                   "dynamic_batch": dynamic_batch, "export_s": round(t1 - t0, 3),
                   "simplify_s": round(time.perf_counter() - t1, 3)}


class OnnxFile:
    """Shared by the converters whose artifact is an ONNX file (onnx, tensorrt): metadata in ``metadata_props``,
    run by onnxruntime."""

    extension = ".onnx"

    def embed_metadata(self, artifact_path: Path, metadata: dict[str, str]) -> None:
        import onnx

        model = onnx.load(str(artifact_path))
        props = {p.key: p.value for p in model.metadata_props}
        props.update({k: str(v) for k, v in metadata.items()})
        del model.metadata_props[:]
        for k, v in props.items():
            model.metadata_props.add(key=k, value=v)
        model.producer_name = "mobexport"
        onnx.save(model, str(artifact_path))

    def read_metadata(self, artifact_path: Path) -> dict[str, str]:
        import onnx

        return {p.key: p.value for p in onnx.load(str(artifact_path), load_external_data=False).metadata_props}


@dataclass(frozen=True)
class OnnxOptions(base.Options):
    dynamic_batch: bool = base.option(False, f"dynamic batch axis (1..{MAX_DYNAMIC_BATCH}); fixed shape by default")
    simplifier: str = base.option(DEFAULT_SIMPLIFIER, f"graph simplifier (default {DEFAULT_SIMPLIFIER})",
                                  choices=SIMPLIFIERS)


@register_converter
class OnnxConverter(OnnxFile, Converter):
    format = "onnx"
    rank = 0
    summary = "export a model to ONNX (onnx-fp32), simplified and validated"
    targets = (Target("onnx", "fp32", "ONNX opset 18, float32, simplified; runs on onnxruntime"),)
    Options = OnnxOptions
    runtime_name = "onnxruntime"
    packages = ("onnx", "onnxscript", "onnxruntime", "onnxslim", "onnxsim")
    modules = ("onnx", "onnxscript", "onnxruntime")
    manifest_reports = ("onnx",)

    def convert(self, state: ExportState, out_path: Path) -> Path:
        o = OnnxOptions.of(state)
        model, state.reports["onnx"] = build_onnx(state, state.model, out_path, o.simplifier, o.dynamic_batch)
        state.io = self._io(state, model)
        return out_path

    @staticmethod
    def _io(state: ExportState, model) -> dict[str, Any]:
        def dims(v):
            return [d.dim_value if d.HasField("dim_value") else d.dim_param for d in v.type.tensor_type.shape.dim]

        return {"inputs": [{"name": i.name, "shape": dims(i), "dtype": "float32", "layout": "NCHW"}
                           for i in model.graph.input],
                "outputs": [{"name": o.name, "shape": dims(o), "dtype": "float32"} for o in model.graph.output]}

    def check_structure(self, artifact_path: Path, state: ExportState) -> list[str]:
        import onnx

        model = onnx.load(str(artifact_path))
        counts = node_counts(model)
        problems = []
        if counts.get("BatchNormalization"):
            problems.append(f"{counts['BatchNormalization']} BatchNormalization node(s) left (BN not folded)")
        if state.spec.multi_branch and counts.get("Add"):
            problems.append(f"{counts['Add']} Add node(s) in a multi-branch deploy graph (branches not merged)")
        if any(t.data_location == onnx.TensorProto.EXTERNAL for t in model.graph.initializer):
            problems.append("initializers stored as external data (artifact is not self-contained)")
        return problems
