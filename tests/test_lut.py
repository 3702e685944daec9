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
    from mobexport.cli import main

    out, db = tmp_path / "lut.json", f"sqlite:///{tmp_path / 'r.db'}"
    assert main(["lut", "build", "mnv4_conv_s", "--out", str(out), "--runs", "5", "--warmup", "1", "--db", db]) == 0
    table = lut.LatencyTable.load(out)
    assert table.runtime == "onnxruntime" and table.entries
    assert all(e.min_ms > 0 and e.min_ms <= e.p50_ms for e in table.entries.values())
    from mobexport.benchmarks.store import open_store

    stored = open_store(db).lookup_tables()  # stored with provenance in the results database
    assert len(stored) == 1 and stored[0]["n_entries"] == len(table.entries)
    assert stored[0]["runtime"] == "onnxruntime" and stored[0]["device"]["cpus"] >= 1
    capsys.readouterr()
    assert main(["predict", "mnv4_conv_s", "--lut", str(out), "--json"]) == 0
    import json

    pred = json.loads(capsys.readouterr().out)
    assert pred["missing"] == 0 and pred["predicted_ms"] > 0
    # a model with blocks the table has never seen: prediction reports them, exit 2 (a usage/data problem; 1 is
    # reserved for a fidelity MISMATCH)
    assert main(["predict", "mobileone_s0", "--lut", str(out)]) == 2
    assert main(["predict", "mobileone_s0", "--lut", str(tmp_path / "nope.json")]) == 2
