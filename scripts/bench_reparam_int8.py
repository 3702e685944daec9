"""Re-parameterization and int8 pay-offs on this host, min-of-1000 (1 thread):

1. deploy form (re-parameterized, BN folded — what the pipeline exports) vs the train-time form exported as
   is (branches and BatchNorm kept; converter called directly on the train model) for mobileone_s0/s1,
   repvgg_a0/b0, on ONNX Runtime and LiteRT;
2. tflite-w8a8 (full int8) vs tflite-fp32 for the convolutional models.

    python scripts/bench_reparam_int8.py [--runs 1000] [--models mobileone_s0,...] [--out exports]

Writes results/bench_reparam_int8.md. A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import copy
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REPARAM_MODELS = ("mobileone_s0", "mobileone_s1", "repvgg_a0", "repvgg_b0")
INT8_MODELS = ("mobileone_s0", "mobileone_s1", "repvgg_a0", "repvgg_b0", "mobilenetv2_100", "mobilenetv3_large_100",
               "efficientnet_lite0", "moga_a", "mnv4_conv_s")


def export_train_form(model_name: str, target_id: str, out: Path):
    """The train-time form through the target's converter, unchanged (no reparameterize, no BN folding)."""
    import torch

    from mobexport.api import create_model, get_spec
    from mobexport.converters import get_converter, resolve_target
    from mobexport.converters.base import Artifact, ExportState
    from mobexport.converters.manifest import sha256_path
    from mobexport.exporter.status import Status
    from mobexport.exporter.testing import randomize_batchnorm

    spec, target = get_spec(model_name), resolve_target(target_id)
    torch.manual_seed(0)
    model = create_model(model_name).eval()
    randomize_batchnorm(model, 0)
    d = out / model_name / f"{target_id}.train"
    d.mkdir(parents=True, exist_ok=True)
    state = ExportState(model_name=spec.name, target=target, spec=spec, model=model,
                        train_model=copy.deepcopy(model), example_input=torch.randn(1, *spec.input_size),
                        workdir=d, weights_tag="random(seed=0,bn_seed=0),train-form")
    conv = get_converter(target.format)
    path = Path(conv.convert(state, d / conv.artifact_filename(state)))
    manifest = {"model": spec.name, "target": target_id, "weights": state.weights_tag,
                "input": {"name": "input", "shape": [1, *spec.input_size], "dtype": "float32", "layout": "NCHW"},
                "status": Status.UNVALIDATED_NO_RUNTIME.value, "sha256": sha256_path(path), "artifact": path.name}
    return Artifact(target_id, path, None, manifest)


def deploy_artifact(model_name: str, target_id: str, out: Path):
    from mobexport.benchmarks.harness import find_artifacts
    from mobexport.converters.pipeline import export

    d = out / model_name / target_id
    if not (d / "manifest.json").is_file():
        export(model_name, target_id, out_dir=out, options={"random_bn_seed": 0})
    return find_artifacts(d)[0]


def min_ms(artifact, runs: int, store) -> float:
    from mobexport.benchmarks.harness import BenchConfig, bench_artifact

    o = bench_artifact(artifact, BenchConfig(runs=runs, warmup=20))
    if o.result is None:
        raise RuntimeError(f"{artifact.path}: {o.bench_status.value}: {o.reason}")
    if store is not None and artifact.manifest_path is not None:
        store.add(o.result)
    return o.result.min_ms


def main() -> None:
    import torch

    from mobexport.api import list_models
    from mobexport.benchmarks.store import open_store

    torch.set_num_threads(1)
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=1000)
    ap.add_argument("--models", help="comma-separated subset")
    ap.add_argument("--out", default=str(ROOT / "exports"))
    ap.add_argument("--db", default=str(ROOT / "mobexport-results.db"))
    a = ap.parse_args()
    out, have = Path(a.out), set(list_models())
    pick = set(a.models.split(",")) if a.models else None
    lines = [f"# Re-parameterization and int8 on this host (min of {a.runs} round trips, 1 thread)", "",
             "| model | runtime | train form (as is) ms | deploy form ms | train/deploy |", "|---|---|---|---|---|"]
    with open_store(a.db) as store:
        for m in (m for m in REPARAM_MODELS if m in have and (not pick or m in pick)):
            for target in ("onnx-fp32", "tflite-fp32"):
                tr = min_ms(export_train_form(m, target, out), a.runs, None)
                de = min_ms(deploy_artifact(m, target, out), a.runs, store)
                lines.append(f"| {m} | {target} | {tr:.3f} | {de:.3f} | {tr / de:.2f}× |")
                print(lines[-1], flush=True)
        lines += ["", "| model | tflite-fp32 ms | tflite-w8a8 ms | fp32/int8 |", "|---|---|---|---|"]
        for m in (m for m in INT8_MODELS if m in have and (not pick or m in pick)):
            try:
                f32 = min_ms(deploy_artifact(m, "tflite-fp32", out), a.runs, store)
                i8 = min_ms(deploy_artifact(m, "tflite-w8a8", out), a.runs, store)
            except Exception as e:  # e.g. calibration images missing: report, go on
                lines.append(f"| {m} | - | - | failed: {type(e).__name__}: {str(e)[:80]} |")
            else:
                lines.append(f"| {m} | {f32:.3f} | {i8:.3f} | {f32 / i8:.2f}× |")
            print(lines[-1], flush=True)
    (ROOT / "results").mkdir(exist_ok=True)
    (ROOT / "results" / "bench_reparam_int8.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
