"""``mobexport eval`` / ``mobexport.evaluate`` on a real export: MobileNetV2 with the torchvision weights to
onnx-fp32 (one export, shared), evaluated on labelled asset photos laid out as an ImageFolder and as a CSV.
The float column equals what PyTorch gives, the fp32 artifact equals the float model, records are stored in
SQLite (and PostgreSQL when MOBEXPORT_TEST_PG_URL is set) and shown by ``mobexport results``; bad input exits 2
and stores nothing."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from mobexport.benchmarks.eval_data import load_data, match_label
from mobexport.benchmarks.evaluate import evaluate, wilson_interval
from mobexport.benchmarks.store import open_store
from mobexport.benchmarks.store.accuracy import accuracy_records, add_accuracy, latest_accuracy
from mobexport.cli import main
from mobexport.exporter.errors import UsageError

MODEL = "mobilenetv2_100"
WEIGHTS = "mobilenet_v2-b0353104.pth"
# Labelled asset photos (first class of the human-checked table): MobileNetV2 gets all but the apple (607 jigsaw
# puzzle in test_real_weights.py), so the expected top-1 is not trivially 0 or 1.
PHOTOS = {"opencv_squirrel_cls.jpg": 335, "opencv_baboon.jpg": 372, "opencv_orange.jpg": 950,
          "opencv_apple.jpg": 948, "skimage_camera.png": 872, "sklearn_china.jpg": 698}


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory, assets) -> Path:
    from mobexport.converters import get_converter
    from mobexport.converters.pipeline import export

    avail = get_converter("onnx").is_available()
    if not avail.ok:
        pytest.skip(f"onnx-fp32: {avail.reason}")
    out = tmp_path_factory.mktemp("exports")
    res = export(MODEL, "onnx-fp32", weights=assets / "weights" / WEIGHTS, out_dir=out)
    return res.manifest_path.parent


@pytest.fixture(scope="module")
def class_names(assets) -> list[str]:
    from mobexport.exporter.assets import class_names

    return class_names()


@pytest.fixture(scope="module")
def labels_file(tmp_path_factory, class_names) -> Path:
    p = tmp_path_factory.mktemp("labels") / "imagenet.txt"
    p.write_text("\n".join(class_names) + "\n")
    return p


def _short(class_names: list[str], idx: int) -> str:
    return class_names[idx].split(",")[0].strip().replace(" ", "_")


@pytest.fixture
def folder(tmp_path, assets, class_names) -> Path:
    root = tmp_path / "data"
    for name, idx in PHOTOS.items():
        d = root / _short(class_names, idx)
        d.mkdir(parents=True, exist_ok=True)
        shutil.copy(assets / "images" / name, d / name)
    return root


@pytest.fixture(scope="module")
def pytorch_top1(assets) -> dict[str, int]:
    """{photo: top-1 class} of our MobileNetV2 with the real weights in plain PyTorch."""
    import torch

    import mobexport
    from mobexport.exporter.preprocess import preprocess

    model = mobexport.create_model(MODEL, weights=assets / "weights" / WEIGHTS).eval()
    spec = mobexport.get_spec(MODEL)
    with torch.no_grad():
        return {n: int(model(torch.from_numpy(preprocess(assets / "images" / n, spec))).argmax())
                for n in PHOTOS}


def test_wilson_interval_known_values():
    assert wilson_interval(5, 10) == pytest.approx((0.2366, 0.7634), abs=1e-4)
    assert wilson_interval(0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)
    assert wilson_interval(10, 10) == pytest.approx((0.7225, 1.0), abs=1e-4)
    with pytest.raises(ValueError):
        wilson_interval(0, 0)


def test_label_matching_exact_insensitive_synonym_index():
    labels = ["tench, Tinca tinca", "fox squirrel, eastern fox squirrel, Sciurus niger", "crane", "crane"]
    assert match_label("tench, Tinca tinca", labels) == 0
    assert match_label("Fox_Squirrel", labels) == 1  # synonym, case/underscore-insensitive
    assert match_label("eastern fox squirrel", labels) == 1
    assert match_label("3", labels) == 3
    with pytest.raises(UsageError, match="several classes"):
        match_label("crane", labels)
    with pytest.raises(UsageError, match="Did you mean: fox squirrel"):
        match_label("fox_squirel", labels)
    assert match_label("7", None, 10) == 7
    with pytest.raises(UsageError, match="integer indices"):
        match_label("tench", None, 10)
    with pytest.raises(UsageError, match="out of range"):
        match_label("10", None, 10)


def test_evaluate_matches_pytorch_and_is_stored(export_dir, folder, class_names, pytorch_top1, tmp_path):
    db = str(tmp_path / "r.db")
    [rec] = evaluate([export_dir], folder, db=db, labels=class_names)
    hits = sum(pytorch_top1[n] == c for n, c in PHOTOS.items())
    assert 0 < hits < len(PHOTOS)  # the apple is missed, the others are right
    assert rec["status"] == "OK" and rec["float_status"] == "OK" and rec["n_images"] == len(PHOTOS)
    assert rec["float_top1"] == pytest.approx(hits / len(PHOTOS))
    assert rec["artifact_top1"] == rec["float_top1"] and rec["agreement"] == 1.0  # fp32 artifact == float
    assert rec["artifact_top5"] >= rec["artifact_top1"]
    lo, hi = wilson_interval(hits, len(PHOTOS))
    assert (rec["artifact_top1_lo"], rec["artifact_top1_hi"]) == pytest.approx((lo, hi))
    assert rec["artifact_sha256"] == json.loads((export_dir / "manifest.json").read_text())["sha256"]
    assert rec["dataset_fingerprint"] == load_data(folder).fingerprint and rec["notes"] is None
    with open_store(db) as store:
        [stored] = accuracy_records(store)
        assert stored["id"] == rec["id"] and stored["artifact_top1"] == rec["artifact_top1"]
        assert stored["dataset_path"] == str(folder.resolve()) and stored["tool_versions"]["onnxruntime"]
        assert latest_accuracy(store, [rec["artifact_sha256"]])[rec["artifact_sha256"]]["id"] == rec["id"]


def test_cli_eval_json_then_results_show_it(export_dir, folder, labels_file, tmp_path, capsys):
    db = str(tmp_path / "r.db")
    assert main(["eval", str(export_dir / f"{MODEL}.onnx"), "--data", str(folder), "--labels", str(labels_file),
                 "--db", db, "--json"]) == 0
    out = capsys.readouterr()
    [rec] = json.loads(out.out)
    assert f"eval {MODEL}/onnx-fp32: {len(PHOTOS)} images" in out.err  # one plain line when piped
    assert rec["ci_method"] == "Wilson score interval, 95%"
    assert main(["bench", str(export_dir), "--runs", "3", "--warmup", "1", "--db", db, "--json"]) == 0
    capsys.readouterr()
    assert main(["results", "--db", db, "--json"]) == 0
    [row] = json.loads(capsys.readouterr().out)
    assert row["accuracy"]["artifact_top1"] == rec["artifact_top1"] and row["accuracy"]["id"] == rec["id"]
    assert main(["results", "--db", db]) == 0
    table = capsys.readouterr().out
    assert f"{100 * rec['artifact_top1']:.1f} (data, n={len(PHOTOS)}" in table  # joined on sha256
    assert "Wilson score interval, 95%" in table and "float top-1" in table


def test_measured_top1_is_plotted(export_dir, folder, class_names, tmp_path):
    from mobexport.benchmarks.plots import pareto_plot, top1_point

    [rec] = evaluate([export_dir], folder, save=False, labels=class_names)
    row = {"model": MODEL, "target": "onnx-fp32", "weights": "mobilenet_v2-b0353104.pth@sha256:b03531047ffa",
           "min_ms": 1.0, "accuracy": rec}
    assert top1_point(row) == (100 * rec["artifact_top1"], f"measured top-1 on data (n={len(PHOTOS)})")
    published = top1_point({**row, "accuracy": None})
    assert published is not None and published[1] == "published"
    assert top1_point({**row, "accuracy": None, "target": "tflite-w8a8"}) is None  # never published for int8
    assert top1_point({**row, "weights": "random(seed=0)"}) is None
    png = pareto_plot([row, {**row, "target": "tflite-w8a8", "accuracy": None}], tmp_path / "p.png")
    assert png.read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(UsageError, match="nothing to plot"):  # int8 without a measurement, random weights
        pareto_plot([{**row, "target": "tflite-w8a8", "accuracy": None}, {**row, "weights": "random"}],
                    tmp_path / "q.png")


def test_csv_layout_with_integer_labels(export_dir, folder, assets, tmp_path, class_names):
    csv = tmp_path / "sub" / "val.csv"
    csv.parent.mkdir()
    lines = ["path,label"] + [f"../data/{_short(class_names, c)}/{n},{c}" for n, c in PHOTOS.items()]
    csv.write_text("\n".join(lines) + "\n")
    [by_csv] = evaluate(export_dir, csv, save=False)  # one path; integer labels: no class names needed
    [by_folder] = evaluate([export_dir], folder, save=False, labels=class_names)
    for k in ("artifact_top1", "artifact_top5", "float_top1", "agreement", "n_images"):
        assert by_csv[k] == by_folder[k], k
    assert load_data(csv).layout == "csv" and load_data(csv, limit=2).samples == load_data(csv, limit=2).samples
    assert len(load_data(csv, limit=2).samples) == 2


def _bad_inputs(root: Path, folder: Path) -> dict[str, tuple[Path, str]]:
    (folder / "fox_squirrel" / "notes.txt").write_text("not an image")
    unknown = root / "unknown"
    shutil.copytree(folder, unknown, ignore=shutil.ignore_patterns("*.txt"))
    (unknown / "fox_squirrel").rename(unknown / "fox_squirel")
    (root / "empty").mkdir()
    empty_class = root / "empty_class"
    shutil.copytree(unknown, empty_class)
    (empty_class / "tench").mkdir()
    fake = root / "fake"
    shutil.copytree(unknown, fake)
    (fake / "fox_squirel").rename(fake / "fox_squirrel")
    (fake / "fox_squirrel" / "notes.jpg").write_text("a text file named .jpg")
    bad_csv = root / "bad.csv"
    bad_csv.write_text("path,label\nmissing.jpg,1\na,b,c\n")
    return {"non-image": (folder, "notes.txt"), "unknown class": (unknown, "Did you mean: fox squirrel"),
            "empty": (root / "empty", "is empty"), "fake image": (fake, "unreadable image(s)"), "empty class": (empty_class, "empty class folder(s)"),
            "bad csv": (bad_csv, "line 2: no such file missing.jpg")}


def test_bad_inputs_exit_2_and_store_nothing(export_dir, folder, labels_file, tmp_path, capsys):
    db = tmp_path / "r.db"
    for what, (data, message) in _bad_inputs(tmp_path, folder).items():
        code = main(["eval", str(export_dir), "--data", str(data), "--labels", str(labels_file), "--db", str(db)])
        err = capsys.readouterr().err
        assert code == 2 and message in err, (what, err)
        assert not db.exists(), what  # checked before the database is even opened
    assert main(["eval", str(tmp_path), "--data", str(folder), "--db", str(db)]) == 2  # no manifest
    assert "manifest.json" in capsys.readouterr().err
    (folder / "fox_squirrel" / "notes.txt").unlink()  # the data is fine now; the class names are not
    short = tmp_path / "short.txt"
    short.write_text("tench\ngoldfish\n")
    assert main(["eval", str(export_dir), "--data", str(folder), "--labels", str(short), "--db", str(db)]) == 2
    assert "2 class names for mobilenetv2_100/onnx-fp32, which has 1000 classes" in capsys.readouterr().err
    assert not db.exists()


def test_weights_override_is_checked(export_dir, folder, labels_file, assets, tmp_path, capsys):
    other = assets / "weights" / "efficientnet-lite0-57934424.pth"
    assert main(["eval", str(export_dir), "--data", str(folder), "--labels", str(labels_file),
                 "--weights", str(other), "--no-store"]) == 2
    assert "is not the checkpoint" in capsys.readouterr().err


def test_random_weights_say_accuracy_is_not_meaningful(folder, tmp_path, class_names):
    from mobexport.converters.pipeline import export

    res = export(MODEL, "onnx-fp32", out_dir=tmp_path / "rnd")
    [rec] = evaluate([res.manifest_path.parent], folder, save=False, limit=2, labels=class_names)
    assert rec["random_weights"] and "accuracy is not meaningful" in rec["notes"]
    assert rec["status"] == "OK" and rec["agreement"] == 1.0 and rec["n_images"] == 2


def _pg_url() -> str | None:
    base = os.environ.get("MOBEXPORT_TEST_PG_URL")
    if not base:
        return None
    from tests.test_store import _fresh_pg_url

    return _fresh_pg_url(base)


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_accuracy_records_round_trip(backend, tmp_path):
    url = str(tmp_path / "r.db") if backend == "sqlite" else _pg_url()
    if url is None:
        pytest.skip("MOBEXPORT_TEST_PG_URL not set: no PostgreSQL to test against (CI starts one)")
    rec = {"artifact_sha256": "cd" * 32, "model": MODEL, "target": "onnx-fp32", "weights": "w@sha256:1",
           "dataset_path": "/data", "dataset_fingerprint": "ef" * 32, "n_images": 3, "artifact_top1": 2 / 3,
           "artifact_top1_lo": 0.2, "artifact_top1_hi": 0.9, "agreement": None, "status": "OK",
           "float_status": "SKIPPED", "notes": "float model not rebuilt", "tool_versions": {"torch": "x"},
           "git_commit": None, "timestamp": "2026-11-30T00:00:00+00:00"}
    with open_store(url) as store:
        rid = add_accuracy(store, rec)
        add_accuracy(store, {**rec, "status": "UNVALIDATED_NO_RUNTIME", "artifact_top1": None})
        [got, _] = accuracy_records(store, model="mobilenet*")
        assert got["id"] == rid and got["artifact_top1"] == pytest.approx(2 / 3) and got["float_top1"] is None
        assert got["tool_versions"] == {"torch": "x"} and got["notes"] == "float model not rebuilt"
        assert latest_accuracy(store, ["cd" * 32])["cd" * 32]["id"] == rid  # the latest *evaluated* one
        with pytest.raises(UsageError, match="lacks dataset_fingerprint"):
            add_accuracy(store, {**rec, "dataset_fingerprint": ""})
        assert len(accuracy_records(store)) == 2


def test_artifact_without_runtime_is_not_evaluated(folder, assets, class_names, tmp_path):
    from mobexport.converters import get_converter
    from mobexport.converters.pipeline import export

    conv = get_converter("coreml")
    if not conv.is_available().ok or conv.runtime_available().ok:
        pytest.skip("needs coremltools for conversion and no Core ML runtime (any host but macOS)")
    res = export(MODEL, "coreml-fp16", weights=assets / "weights" / WEIGHTS, out_dir=tmp_path / "cm")
    db = str(tmp_path / "r.db")
    [rec] = evaluate([res.manifest_path.parent], folder, db=db, labels=class_names, limit=2)
    assert rec["status"] == "UNVALIDATED_NO_RUNTIME" and "Core ML runs only on macOS" in rec["notes"]
    assert rec["artifact_top1"] is None and rec["artifact_top5"] is None and rec["agreement"] is None
    assert rec["float_status"] == "OK" and rec["float_top1"] is not None  # the float column still measured
    with open_store(db) as store:
        assert accuracy_records(store)[0]["status"] == "UNVALIDATED_NO_RUNTIME"
        assert latest_accuracy(store, [rec["artifact_sha256"]]) == {}  # never joined as a number


def test_in_memory_module_labels_from_manifest(tmp_path, assets):
    """A user module exported from Python: class folders match the manifest's labels; the float column needs
    the module (model=), otherwise it is skipped with a note."""
    import torch

    from mobexport.converters.pipeline import export
    from tests.fixtures.custom_model import build

    torch.manual_seed(0)
    net = build(3)
    res = export(net, "onnx-fp32", out_dir=tmp_path / "x", labels=["cat", "dog", "bird"], input_shape=(1, 3, 64, 64),
                 name="mynet")
    data = tmp_path / "d"
    for i, (cls, name) in enumerate([("Cat", "skimage_chelsea.png"), ("dog", "darknet_dog.jpg"),
                                     ("BIRD", "darknet_eagle.jpg"), ("dog", "opencv_baboon.jpg")]):
        (data / cls).mkdir(parents=True, exist_ok=True)
        shutil.copy(assets / "images" / name, data / cls / f"{i}_{name}")
    [alone] = evaluate([res.manifest_path.parent], data, save=False)
    assert alone["float_status"] == "SKIPPED" and "pass model=" in alone["notes"]
    assert alone["status"] == "OK" and alone["artifact_top1"] is not None and alone["n_images"] == 4
    calls = []
    net.register_forward_hook(lambda *_: calls.append(1))
    both, again = evaluate([res.manifest_path.parent, res.artifact], data, save=False, model=net)
    assert both["float_top1"] == both["artifact_top1"] == alone["artifact_top1"] and both["agreement"] == 1.0
    assert again["float_top1"] == both["float_top1"] and again["agreement"] == 1.0
    assert len(calls) == 4  # one float pass over the 4 images, shared by both artifacts
