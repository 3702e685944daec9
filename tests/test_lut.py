"""Per-block lookup table: decomposition, prediction arithmetic, a real (small) table on onnxruntime."""

from __future__ import annotations

import pytest
from torch import nn

from mobexport.benchmarks.analysis import lut


class Toy(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, 2, 1)
        self.stages = nn.Sequential(nn.Sequential(nn.Conv2d(8, 8, 3, 1, 1), nn.Conv2d(8, 8, 3, 1, 1)),
                                    nn.Sequential(nn.Conv2d(8, 16, 3, 2, 1)))
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        return self.fc(self.stages(self.stem(x)).mean((2, 3)))


def test_decompose_expands_containers_in_execution_order_and_dedups_by_structure():
    blocks = lut.decompose(Toy(), (3, 32, 32))
    assert [b.name for b in blocks] == ["stem", "stages.0.0", "stages.0.1", "stages.1.0", "fc"]
    assert [b.input_shape for b in blocks] == [(1, 3, 32, 32), (1, 8, 16, 16), (1, 8, 16, 16), (1, 8, 16, 16),
                                               (1, 16)]
    # identical structure + input shape → one table entry; different shape → another
    assert blocks[1].key == blocks[2].key and blocks[1].key != blocks[3].key


def test_predict_is_the_sum_over_blocks_and_reports_missing(tmp_path):
    import mobexport

    spec = mobexport.get_spec("mobileone_s0")
    model = mobexport.reparameterize(mobexport.create_model("mobileone_s0"))
    blocks = lut.decompose(model, spec.input_size)
    keys = sorted({b.key for b in blocks})
    table = lut.LatencyTable("onnxruntime", "x", 1)
    for i, k in enumerate(keys[:-1]):  # leave one distinct block out
        table.entries[k] = lut.Entry(k, "T", [1], min_ms=0.1 * (i + 1), p50_ms=1.0, runs=1, example="")
    table.save(tmp_path / "t.json")
    loaded = lut.LatencyTable.load(tmp_path / "t.json")
    pred = lut.predict("mobileone_s0", loaded)
    expected = sum(loaded.entries[b.key].min_ms for b in blocks if b.key in loaded.entries)
    assert pred["predicted_ms"] == pytest.approx(expected)
    assert pred["blocks"] == len(blocks)
    assert pred["missing"] == sum(1 for b in blocks if b.key == keys[-1]) > 0


def test_build_a_real_table_and_predict_with_it(tmp_path, capsys):
    """onnx-fp32 blocks made by the onnx converter (opset 18, simplified), timed through the harness."""
    from mobexport.cli import main

    out, db = tmp_path / "lut.json", f"sqlite:///{tmp_path / 'r.db'}"
    assert main(["lut", "build", "repvgg_a0", "--out", str(out), "--runs", "5", "--warmup", "1", "--in-process",
                 "--db", db]) == 0
    assert "repvgg_a0: block 1/9 stem → onnx-fp32" in capsys.readouterr().err  # one line per block
    table = lut.LatencyTable.load(out)
    assert (table.runtime, table.target, table.blocks_from) == ("onnxruntime", "onnx-fp32", lut.BLOCKS_FROM)
    assert len(table.entries) == 9 and all(e.runs == 5 for e in table.entries.values())
    assert all(e.min_ms > 0 and e.min_ms <= e.p50_ms for e in table.entries.values())
    from mobexport.benchmarks.store import open_store

    stored = open_store(db).lookup_tables()  # stored with provenance in the results database
    assert len(stored) == 1 and stored[0]["n_entries"] == len(table.entries)
    assert stored[0]["runtime"] == "onnxruntime" and stored[0]["device"]["cpus"] >= 1
    capsys.readouterr()
    assert main(["predict", "repvgg_a0", "--lut", str(out), "--json"]) == 0
    import json

    pred = json.loads(capsys.readouterr().out)
    assert pred["missing"] == 0 and pred["predicted_ms"] == pytest.approx(
        sum(e["ms"] for e in pred["per_block"]))
    # a model with blocks the table has never seen: prediction reports them, exit 2 (a usage/data problem; 1 is
    # reserved for a fidelity MISMATCH)
    assert main(["predict", "mobileone_s0", "--lut", str(out)]) == 2
    assert main(["predict", "mobileone_s0", "--lut", str(tmp_path / "nope.json")]) == 2
    # the same file for another target: refused before anything is converted, the table untouched
    before = out.read_bytes()
    capsys.readouterr()
    assert main(["lut", "build", "repvgg_a0", "--runtime", "ai-edge-litert", "--out", str(out)]) == 2
    assert "built for onnx-fp32 on onnxruntime" in capsys.readouterr().err and out.read_bytes() == before


def test_runtime_and_target_come_from_the_registries(tmp_path, capsys):
    from mobexport.cli import main

    out = tmp_path / "t.json"
    assert main(["lut", "build", "repvgg_a0", "--runtime", "onnxruntme", "--out", str(out)]) == 2
    assert "Did you mean: onnxruntime" in capsys.readouterr().err
    assert main(["lut", "build", "repvgg_a0", "--target", "tflite-w8", "--out", str(out)]) == 2
    assert "Did you mean" in capsys.readouterr().err
    assert main(["lut", "build", "repvgg_a0", "--runtime", "onnxruntime", "--target", "tflite-fp32", "--out",
                 str(out)]) == 2
    assert "does not run format 'tflite'" in capsys.readouterr().err
    assert not out.exists()
    rt, t = lut.resolve("ai-edge-litert")
    assert (rt.name, t.id) == ("ai-edge-litert", "tflite-fp32")  # the runtime's format, its default scheme
    assert lut.resolve("onnxruntime")[1].id == "onnx-fp32"


def test_int8_tflite_blocks_are_the_converters_full_integer_artifacts(tmp_path):
    """tflite-w8a8 blocks: ai-edge-quantizer on the block's real inputs for real photos, int8 I/O, timed by
    LiteRT in a fresh worker (a 4-D conv block and a 2-D Linear head)."""
    from mobexport.benchmarks.harness import BenchConfig
    from mobexport.converters import resolve_target
    from mobexport.converters.pipeline import custom_spec
    from mobexport.converters.tflite import inspect_ops

    model, spec, target = Toy().eval(), custom_spec("toy", (1, 3, 32, 32)), resolve_target("tflite-w8a8")
    refs = [b for b in lut.decompose(model, spec.input_size) if b.name in ("stem", "fc")]
    calib = lut.block_inputs(model, spec, refs, n=4)
    assert [len(calib[r.key]) for r in refs] == [4, 4] and calib[refs[1].key][0].shape == (1, 16)
    cfg = BenchConfig(runs=5, warmup=1, runtime="ai-edge-litert")
    for ref in refs:
        path = lut.convert_block(ref, target, spec, tmp_path, calib[ref.key])
        ops = inspect_ops(path)
        assert (ops["input_dtype"], ops["output_dtype"], ops["float_ops"]) == ("int8", "int8", {})
        mn, p50 = lut.time_block(path, target, ref.input_shape, cfg)
        assert 0 < mn <= p50


def test_a_table_from_before_the_converters_still_predicts_but_is_not_merged_into(tmp_path, capsys):
    """A table written before tables named their target and how their blocks were made (the JSON had no
    ``target``/``blocks_from``) loads as onnx-fp32 and predicts; ``lut build`` refuses to add converter-made blocks
    to it. The committed results/lut_onnxruntime_1t.json predicts too."""
    import json
    from pathlib import Path

    from mobexport.cli import main

    spec, model = lut._deploy_model("repvgg_a0")
    keys = {b.key for b in lut.decompose(model, spec.input_size)}
    old = {"runtime": "onnxruntime", "runtime_version": "1.20", "threads": 1, "device": {}, "created": "",
           "entries": [{"key": k, "block_type": "T", "input_shape": [1], "min_ms": 0.5, "p50_ms": 0.6, "runs": 9,
                        "example": ""} for k in sorted(keys)]}
    path = tmp_path / "old.json"
    path.write_text(json.dumps(old))
    table = lut.LatencyTable.load(path)
    assert (table.target, table.blocks_from) == ("onnx-fp32", "")
    assert lut.predict("repvgg_a0", table)["missing"] == 0
    assert main(["lut", "build", "repvgg_a0", "--out", str(path)]) == 2
    assert "holds blocks made another way" in capsys.readouterr().err and json.loads(path.read_text()) == old
    committed = lut.LatencyTable.load(Path(__file__).parents[1] / "results" / "lut_onnxruntime_1t.json")
    assert committed.runtime == "onnxruntime" and committed.target == "onnx-fp32"
    pred = lut.predict("mobilenetv2_100", committed)
    assert pred["missing"] == 0 and pred["predicted_ms"] > 0
