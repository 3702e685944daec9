"""Your model through the pipeline (issue #14), end to end with the real converters and runtimes:

* a fine-tuned zoo model: MobileOne-S0 with a 10-class head fitted on the asset photos at 256x256, saved as a
  Lightning-style wrapped checkpoint, exported by the CLI to every target with ``--num-classes 10 --input-size 256
  --labels FILE``, validated (int8 calibrated at 256), the labels read back from each artifact;
* a user module from a file (tests/fixtures/custom_model.py: multi-branch blocks with their own
  ``reparameterize()`` / ``switch_to_deploy()``, plain Conv+BN pairs, a BN after an add) exported by the CLI and by
  the Python API to every target, re-parameterized, folded and validated;
* bad input: exit 2 with the reason, nothing written.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mobexport.cli import main

FIXTURE = Path(__file__).parent / "fixtures" / "custom_model.py"
FACTORY = f"{FIXTURE}:build"
CLASSES = [f"group_{i}" for i in range(10)]
# (subcommand, precision flag) for every target the CLI offers
TARGETS = [("onnx", None), ("tflite", None), ("tflite", "--fp16"), ("tflite", "--int8"), ("coreml", None),
           ("coreml", "--int8"), ("coreml", "--w8"), ("tensorrt", None), ("tensorrt", "--int8")]
TARGET_IDS = ["onnx-fp32", "tflite-fp32", "tflite-fp16", "tflite-w8a8", "coreml-fp16", "coreml-w8a8", "coreml-w8",
              "tensorrt-fp16", "tensorrt-w8a8"]
PASSING = {"OK", "UNVALIDATED_NO_RUNTIME"}


def _labels_file(tmp: Path) -> Path:
    f = tmp / "labels.txt"
    f.write_text("\n".join(CLASSES) + "\n")
    return f


def _check_artifact(out: Path, model: str, target: str, shape: list[int]) -> dict:
    from mobexport.converters import get_converter

    folder = out / model / target
    m = json.loads((folder / "manifest.json").read_text())
    assert m["status"] in PASSING, m["fidelity"]
    if m["status"] == "UNVALIDATED_NO_RUNTIME":  # Core ML off macOS, TensorRT engines without CUDA
        assert target.startswith("coreml"), m["fidelity"]
    assert m["input_size"] == shape and m["num_classes"] == len(CLASSES)
    assert m["labels"] == CLASSES
    embedded = get_converter(m["format"]).read_metadata(folder / m["artifact"])
    assert json.loads(embedded["mobexport.labels"]) == CLASSES, f"labels not embedded in {target}"
    return m


# ---------------------------------------------------------------- a fine-tuned zoo model

def _visual_groups(f, k: int = 10):
    """k groups of the photos by their features: k-means (farthest-point start, 20 Lloyd steps)."""
    import torch

    f = f - f.mean(0)
    cent = [f[0]]
    for _ in range(k - 1):
        cent.append(f[torch.cdist(f, torch.stack(cent)).min(1).values.argmax()])
    cent = torch.stack(cent)
    for _ in range(20):
        y = torch.cdist(f, cent).argmin(1)
        cent = torch.stack([f[y == i].mean(0) if (y == i).any() else cent[i] for i in range(k)])
    return y


@pytest.fixture(scope="module")
def finetuned(tmp_path_factory, assets) -> Path:
    """MobileOne-S0 (10 classes, 256x256) fine-tuned as a linear probe: backbone with seeded random weights and
    randomized BatchNorm statistics (no MobileOne ImageNet weights ship in a package), its head trained for 300
    Adam steps to classify the asset photos into 10 visual groups (k-means of the backbone's features); saved as
    Lightning saves a LightningModule whose backbone attribute is ``model``. Arbitrary labels (photo i -> i % 10)
    are learnable too, but only from feature directions too small for int8 activations: the probe would then
    measure the random backbone, not the exporter."""
    import torch

    from mobexport.api import create_model, get_spec
    from mobexport.exporter.assets import image_paths
    from mobexport.exporter.testing import randomize_batchnorm
    from mobexport.quantization.calibration import preprocess_image

    torch.manual_seed(0)
    model = randomize_batchnorm(create_model("mobileone_s0", num_classes=10, input_size=256), 0).eval()
    spec = get_spec("mobileone_s0", num_classes=10, input_size=256)
    x = torch.cat([torch.from_numpy(preprocess_image(p, spec)) for p in image_paths()])
    feats = []
    model.head.fc.register_forward_pre_hook(lambda _m, a: feats.append(a[0].detach()))
    with torch.no_grad():
        model(x)
    f = feats[0]
    y = _visual_groups(f)
    mu, sd = f.mean(0), f.std()  # fit on centred, scaled features; fold the scaling into the head
    head = torch.nn.Linear(f.shape[1], 10)
    opt = torch.optim.Adam(head.parameters(), lr=1e-2, weight_decay=1e-3)
    for _ in range(300):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(head((f - mu) / sd), y).backward()
        opt.step()
    with torch.no_grad():
        model.head.fc.weight.copy_(head.weight / sd)
        model.head.fc.bias.copy_(head.bias - (head.weight / sd) @ mu)
        assert (model(x).argmax(1) == y).float().mean() > 0.9  # the head learnt the groups
    ckpt = tmp_path_factory.mktemp("ckpt") / "epoch=2-step=300.ckpt"
    torch.save({"epoch": 2, "global_step": 300, "pytorch-lightning_version": "2.4.0",
                "state_dict": {f"model.{k}": v for k, v in model.state_dict().items()},
                "hyper_parameters": {"num_classes": 10, "lr": 1e-2}}, ckpt)
    return ckpt


@pytest.mark.parametrize("cmd,flag", TARGETS, ids=TARGET_IDS)
def test_finetuned_checkpoint_to_every_target(cmd, flag, finetuned, tmp_path, capsys):
    labels = _labels_file(tmp_path)
    argv = [cmd, "mobileone_s0", *([flag] if flag else []), "--weights", str(finetuned), "--num-classes", "10",
            "--input-size", "256", "--labels", str(labels), "--out", str(tmp_path / "out")]
    assert main(argv) == 0, capsys.readouterr().err
    target = TARGET_IDS[TARGETS.index((cmd, flag))]
    m = _check_artifact(tmp_path / "out", "mobileone_s0", target, [3, 256, 256])
    assert m["weights"].startswith(finetuned.name) and m["random_weights"] is None
    assert m["input"]["shape"] == [1, 3, 256, 256]
    assert m["preprocessing"]["crop"] == 256
    if m["scheme"] == "w8a8":  # calibrated and judged on photos at 256, by the trained-weights gate
        assert m["images"]["calibration_images"] >= 10
        if m["status"] == "OK":
            assert m["fidelity"]["policy_name"] == "int8"
            assert m["fidelity"]["metrics"]["top1_agreement"] >= 0.8


# ---------------------------------------------------------------- a user module from a file

@pytest.fixture(scope="module")
def custom_ckpt(tmp_path_factory) -> Path:
    """The fixture's weights with randomized BatchNorm statistics, as a bare state_dict."""
    import torch

    from mobexport.exporter.source import call_factory, load_factory
    from mobexport.exporter.testing import randomize_batchnorm

    fn, src = load_factory(FACTORY)
    torch.manual_seed(1)
    model = randomize_batchnorm(call_factory(fn, src, 10), 1)
    path = tmp_path_factory.mktemp("custom") / "custom.pth"
    torch.save(model.state_dict(), path)
    return path


def _check_passes(m: dict) -> None:
    passes = m["passes"]
    assert {(r["module"], r["method"]) for r in passes["reparameterized"]} >= {("rep", "reparameterize"),
                                                                               ("down", "switch_to_deploy")}
    assert {"batchnorm": "bn", "into": "conv"} in passes["folded"]
    assert passes["affine"] == ["post_bn"]
    assert m["equivalence"]["train_vs_deploy_rel_max_error"] < 1e-5


@pytest.mark.parametrize("cmd,flag", TARGETS, ids=TARGET_IDS)
def test_custom_module_cli_to_every_target(cmd, flag, custom_ckpt, tmp_path, capsys):
    argv = [cmd, FACTORY, *([flag] if flag else []), "--weights", str(custom_ckpt), "--num-classes", "10",
            "--input-size", "64", "--labels", str(_labels_file(tmp_path)), "--out", str(tmp_path)]
    assert main(argv) == 0, capsys.readouterr().err
    target = TARGET_IDS[TARGETS.index((cmd, flag))]
    m = _check_artifact(tmp_path, "build", target, [3, 64, 64])
    assert m["model_source"]["kind"] == "factory" and m["model_source"]["ref"] == FACTORY
    assert m["model_source"]["class"].endswith("CustomNet") and len(m["model_source"]["file_sha256"]) == 64
    assert m["family"] == "custom"
    _check_passes(m)


@pytest.mark.parametrize("target", TARGET_IDS)
def test_custom_module_python_api_to_every_target(target, tmp_path):
    import torch

    from mobexport.converters.pipeline import export
    from mobexport.exporter.source import call_factory, load_factory
    from mobexport.exporter.testing import randomize_batchnorm

    fn, src = load_factory(FACTORY)
    torch.manual_seed(2)
    model = randomize_batchnorm(call_factory(fn, src, 10), 2).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    r = export(model, target, input_shape=(1, 3, 64, 64), labels=CLASSES, out_dir=tmp_path, name="mynet")
    assert r.status.value in PASSING
    m = _check_artifact(tmp_path, "mynet", target, [3, 64, 64])
    assert m["model_source"] == {"kind": "module", "name": "customnet",
                                 "class": m["model_source"]["class"]}
    assert m["weights"].startswith("in-memory ")
    _check_passes(m)
    after = model.state_dict()  # the caller's module is not re-parameterized behind its back
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)


# ---------------------------------------------------------------- random weights, honestly

def test_random_weights_are_named_and_not_degenerate(tmp_path, capsys):
    assert main(["onnx", "mobileone_s0", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "random weights (seed 0): latency is real, accuracy is not" in out
    m = json.loads((tmp_path / "mobileone_s0" / "onnx-fp32" / "manifest.json").read_text())
    assert m["random_weights"] == {"seed": 0, "note": "random weights (seed 0): latency is real, accuracy is not"}
    assert m["weights"] == m["random_weights"]["note"]
    assert m["fidelity"]["metrics"]["output_range"] > 1e-2  # randomized BatchNorm: the logits have a spread


def test_random_weights_are_deterministic():
    import torch

    from mobexport.converters.pipeline import build_zoo_model

    a, tag = build_zoo_model("mobilenetv3_small_100", seed=3)
    b, _ = build_zoo_model("mobilenetv3_small_100", seed=3)
    c, _ = build_zoo_model("mobilenetv3_small_100", seed=4)
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        assert torch.equal(a(x), b(x)) and not torch.equal(a(x), c(x))
    assert tag == "random weights (seed 3): latency is real, accuracy is not"


def test_model_from_manifest_rebuilds_the_float_model(tmp_path, custom_ckpt):
    import numpy as np
    import torch

    from mobexport.converters.pipeline import export, model_from_manifest

    r = export(FACTORY, "onnx-fp32", weights=custom_ckpt, num_classes=10, input_size=64, out_dir=tmp_path)
    model = model_from_manifest(r.manifest)
    x = torch.randn(1, 3, 64, 64)
    from mobexport.converters import get_converter
    from mobexport.converters.base import Artifact

    runner = get_converter("onnx").load(Artifact("onnx-fp32", r.artifact))
    with torch.no_grad():
        np.testing.assert_allclose(runner.run(x.numpy()), model(x).numpy(), rtol=1e-4, atol=1e-5)
    r2 = export("mobileone_s0", "onnx-fp32", out_dir=tmp_path, input_size=128, num_classes=5)
    again = model_from_manifest(r2.manifest)
    x = torch.randn(1, 3, 128, 128)
    runner = get_converter("onnx").load(Artifact("onnx-fp32", r2.artifact))
    with torch.no_grad():  # the random weights of the same seed: the same function as the artifact
        np.testing.assert_allclose(runner.run(x.numpy()), again(x).numpy(), rtol=1e-3, atol=1e-4)


# ---------------------------------------------------------------- bad input: exit 2, nothing written

def _bad(argv, tmp_path, capsys, *needles):
    out = tmp_path / "out"
    code = main([*argv, "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2, err
    for n in needles:
        assert n in err, err
    assert not out.exists() or not any(out.rglob("*")), list(out.rglob("*"))


def test_wrong_class_count_names_the_head(finetuned, tmp_path, capsys):
    _bad(["onnx", "mobileone_s0", "--weights", str(finetuned)], tmp_path, capsys, "--num-classes 10")


def test_labels_count_differs(tmp_path, capsys):
    f = tmp_path / "l.txt"
    f.write_text("a\nb\nc\n")
    _bad(["onnx", "mobileone_s0", "--num-classes", "10", "--labels", str(f)], tmp_path, capsys,
         "3 labels for a model with 10 classes")
    _bad(["onnx", FACTORY, "--labels", str(f)], tmp_path, capsys, "3 labels for a model with 10 classes")


@pytest.mark.parametrize("ref,needle", [
    (f"{FIXTURE.parent}/nope.py:build", "factory file not found"),
    (f"{FIXTURE}:missing", "has no attribute 'missing'"),
    (f"{FIXTURE}:raises", "raised RuntimeError: boom"),
    (f"{FIXTURE}:not_a_module", "returned int, not a torch.nn.Module"),
    ("no_such_package_xyz.models:build", "cannot import module 'no_such_package_xyz.models'"),
])
def test_bad_factory(ref, needle, tmp_path, capsys):
    _bad(["onnx", ref], tmp_path, capsys, needle)


def test_unknown_checkpoint_wrapper(tmp_path, capsys):
    import torch

    f = tmp_path / "odd.pt"
    torch.save({"weights_v2": {"layer": [1, 2, 3]}, "note": "not a state dict"}, f)
    _bad(["onnx", "mobileone_s0", "--weights", str(f)], tmp_path, capsys, "weights_v2")


def test_bad_input_size_and_class_count(tmp_path, capsys):
    _bad(["onnx", "mobileone_s0", "--input-size", "big"], tmp_path, capsys, "big")
    _bad(["onnx", "mobileone_s0", "--num-classes", "0"], tmp_path, capsys, "num_classes")
    _bad(["onnx", FACTORY, "--input-size", "64", "--num-classes", "10", "--mean", "1,2"], tmp_path, capsys, "--mean")


def test_plot_names_the_random_weights_it_leaves_out(tmp_path):
    from mobexport.benchmarks.plots import _random_left_out, pareto_plot, top1_point

    tag = "random weights (seed 0): latency is real, accuracy is not"
    rnd = {"model": "mobileone_s1", "target": "onnx-fp32", "min_ms": 3.0, "weights": tag}
    real = {"model": "mobilenetv2_100", "target": "onnx-fp32", "min_ms": 5.0, "weights": "mobilenet_v2-b0353104.pth"}
    assert top1_point(rnd) is None  # never the published top-1 for random weights
    assert _random_left_out([rnd, real]) == [f"mobileone_s1: {tag}"]
    assert pareto_plot([rnd, real], tmp_path / "p.png").stat().st_size > 0


def test_plot_axes_and_legend(tmp_path):
    import matplotlib

    matplotlib.use("Agg", force=True)
    from matplotlib import pyplot as plt

    from mobexport.benchmarks.plots import Y_AXES, pareto_plot

    rows = [{"model": m, "target": "onnx-fp32", "min_ms": ms, "weights": "w.pth"}
            for m, ms in (("mobilenetv2_100", 2.0), ("mobileone_s0", 3.0), ("repvgg_a0", 4.0))]
    seen = {}
    orig = plt.close
    plt.close = lambda fig=None: seen.setdefault("fig", fig)  # keep the figure to read its legend
    try:
        for y in ("params", "macs"):
            pareto_plot(rows, tmp_path / f"{y}.png", y=y)
            ax = seen.pop("fig").axes[0]
            assert ax.get_ylabel() == Y_AXES[y]
            labels = [t.get_text() for t in ax.get_legend().get_texts()]
            assert "Pareto front" in labels and any(y.replace("macs", "MACs") in t for t in labels), labels
    finally:
        plt.close = orig


def test_user_model_mean_std_override_the_default_preprocessing(tmp_path):
    argv = ["onnx", FACTORY, "--input-size", "64x96", "--mean", "0.5,0.5,0.5", "--std", "0.25,0.25,0.25",
            "--out", str(tmp_path)]
    assert main(argv) == 0
    pp = json.loads((tmp_path / "build" / "onnx-fp32" / "manifest.json").read_text())["preprocessing"]
    assert pp["mean"] == [0.5] * 3 and pp["std"] == [0.25] * 3
    assert pp["crop"] == [64, 96] and pp["resize"] == round(64 * 256 / 224)  # the default's size rule kept
