"""The results store on both backends (SQLite file, and PostgreSQL when MOBEXPORT_TEST_PG_URL is set):
round trip with raw samples, filters, migrations v1 → v2, concurrent writer processes, atomic inserts."""

from __future__ import annotations

import json
import multiprocessing as mp
import os
from pathlib import Path

import pytest

from mobexport.benchmarks.results import BenchmarkResult, PayloadError, compute_stats, validate_payload
from mobexport.benchmarks.store import normalize_url, open_store
from mobexport.benchmarks.store import schema as sch

EXAMPLES = Path(__file__).resolve().parents[1] / "benchmarks" / "schema" / "examples"


def _fresh_pg_url(base: str) -> str:
    """A new, empty database on the test server so runs never see each other's rows."""
    from mobexport.benchmarks.store import create_database

    return create_database(base, "mx_")


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "results.db")
    base = os.environ.get("MOBEXPORT_TEST_PG_URL")
    if not base:
        pytest.skip("MOBEXPORT_TEST_PG_URL not set: no PostgreSQL to test against (CI starts one)")
    return _fresh_pg_url(base)


def make_result(i: int = 0, model: str = "mobileone_s1", target: str = "onnx-fp32", n: int = 20,
                harness: str = "host") -> BenchmarkResult:
    samples = [1.0 + 0.01 * ((i * 7 + k * 13) % 17) for k in range(n)]
    return BenchmarkResult.from_samples(
        samples, model=model, weights="random", target=target, artifact_sha256="ab" * 32, harness=harness,
        device_model="test-x86_64", os="Linux", os_version="6.0", chip="Test CPU", runtime="onnxruntime",
        runtime_version="1.0", compute_unit="cpu", threads=1, input_shape=[1, 3, 224, 224], batch_size=1,
        warmup=5, runs=n, validation_status="OK", timestamp="2025-01-01T00:00:00+00:00",
        tool_versions={"mobexport": "0.1.0"}, notes=f"writer {i}")


def test_round_trip_keeps_every_field_and_raw_samples(db_url):
    r = make_result(3)
    with open_store(db_url) as store:
        rid = store.add(r)
        got = store.get(rid).result
    assert got.to_dict() == r.to_dict()
    assert got.samples_ms == r.samples_ms and len(got.samples_ms) == 20


def test_example_payloads_are_valid_and_storable(db_url):
    with open_store(db_url) as store:
        for name, harness in (("ios_result.json", "ios_app"), ("android_result.json", "android_app")):
            payload = json.loads((EXAMPLES / name).read_text())
            r = BenchmarkResult.from_dict(payload)
            assert r.harness == harness
            assert store.get(store.add(r)).result.to_dict() == payload


def test_query_filters_by_glob_target_and_harness(db_url):
    with open_store(db_url) as store:
        store.add(make_result(0, model="mobileone_s1"))
        store.add(make_result(1, model="mobileone_s0", target="tflite-fp32"))
        store.add(make_result(2, model="repvgg_a0", harness="android_app"))
        store.add(make_result(3, model="mobileone_x_1"))
        assert [s.result.model for s in store.query(model="mobileone*")] == [
            "mobileone_s1", "mobileone_s0", "mobileone_x_1"]
        assert [s.result.model for s in store.query(model="mobileone_s?")] == ["mobileone_s1", "mobileone_s0"]
        assert [s.result.model for s in store.query(target="tflite-fp32")] == ["mobileone_s0"]
        assert [s.result.model for s in store.query(harness="android_app")] == ["repvgg_a0"]
        assert store.query(model="mobileone*")[0].result.samples_ms == []  # samples only on request
        assert len(store.query(with_samples=True)[0].result.samples_ms) == 20


def test_migrations_keep_old_rows(db_url):
    old = make_result(5)
    with open_store(db_url, migrate_to=1) as v1:
        assert v1.version == 1
        rid = v1.add(old)
        with v1.engine.connect() as c:
            cols = {col["name"] for col in sch.sa.inspect(c).get_columns("results")}
        assert "thermal_state_before" not in cols
    with open_store(db_url) as v2:
        assert v2.version == sch.LATEST >= 5
        got = v2.get(rid).result
        assert got.thermal_state_before is None and got.samples_ms == old.samples_ms
        new = make_result(6)
        new.thermal_state_before, new.thermal_state_after = "nominal", "serious"
        assert v2.get(v2.add(new)).result.thermal_state_after == "serious"
        assert v2.lookup_tables() == []  # v3 table exists and is empty
        lid = v2.add_lookup_table({"runtime": "onnxruntime", "runtime_version": "1", "threads": 1,
                                   "device": {"cpus": 2}, "created": "2026-11-21T00:00:00Z",
                                   "entries": [{"key": "k", "min_ms": 0.1}]})
        assert v2.lookup_tables()[0]["id"] == lid and v2.lookup_tables()[0]["entries"][0]["key"] == "k"
    with open_store(db_url) as again:  # idempotent
        assert again.version == sch.LATEST and again.count() == 2 and len(again.lookup_tables()) == 1


def test_newer_database_is_refused(db_url):
    from mobexport.exporter.errors import UsageError

    with open_store(db_url) as store, store.engine.begin() as c:
        c.execute(sch.version_table.update().values(version=99))
    with pytest.raises(UsageError, match="newer than this mobexport"):
        open_store(db_url)


def test_invalid_record_is_refused_and_nothing_written(db_url):
    bad = make_result(1)
    bad.min_ms = 0.5  # claims a minimum its samples do not have
    with open_store(db_url) as store:
        n0 = store.count()
        with pytest.raises(PayloadError, match="not the minimum"):
            store.add(bad)
        assert store.count() == n0


def _writer(url: str, worker: int, n: int) -> None:
    store = open_store(url)
    for i in range(n):
        store.add(make_result(worker * 1000 + i, model=f"w{worker}", n=100))
    store.close()


def test_concurrent_writer_processes_lose_no_row(db_url):
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(db_url, w, 50)) for w in range(8)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(180)
    assert [p.exitcode for p in procs] == [0] * 8
    with open_store(db_url) as store:
        rows = store.query(with_samples=True)
    assert len(rows) == 400
    for w in range(8):
        mine = [s for s in rows if s.result.model == f"w{w}"]
        assert sorted(s.result.notes for s in mine) == sorted(f"writer {w * 1000 + i}" for i in range(50))
    assert all(len(s.result.samples_ms) == 100 for s in rows)


def test_stats_and_payload_checks():
    s = compute_stats([3.0, 1.0, 2.0, 4.0, 5.0])
    assert (s.min_ms, s.p50_ms, s.max_ms, s.mean_ms) == (1.0, 3.0, 5.0, 3.0)
    assert s.p90_ms == pytest.approx(4.6) and s.std_ms == pytest.approx(2 ** 0.5)
    good = make_result().to_dict()
    validate_payload(good)
    for key, value, reason in (("runs", 21, "samples_ms has 20"), ("min_ms", 0.5, "not the minimum"),
                               ("timestamp", "yesterday", "RFC 3339"), ("target", "onnx-int3", "target"),
                               ("harness", "web", "harness"), ("p90_ms", 0.1, "out of order")):
        with pytest.raises(PayloadError, match=reason):
            validate_payload({**good, key: value})
    with pytest.raises(PayloadError, match="unexpected|Additional"):
        validate_payload({**good, "extra": 1})


@pytest.mark.parametrize(("bad", "reason"), [
    ("x", "samples_ms/7: 'x' is not of type 'number'"), (True, "samples_ms/7: 'True' is not of type 'number'"),
    (None, "not of type 'number'"), (-0.5, "samples_ms/7: -0.5 is less than the minimum of 0"),
    (float("nan"), "samples_ms/7: nan is not a finite number"), ([1.0], "samples_ms/7"), ({"a": 1}, "samples_ms/7"),
])
def test_long_sample_lists_are_checked_as_the_schema_says(bad, reason):
    """samples_ms is checked by one loop (not a jsonschema call per sample): the same refusals, the sample named."""
    good = make_result(n=20).to_dict()
    samples = list(good["samples_ms"])
    samples[7] = bad
    with pytest.raises(PayloadError) as e:
        validate_payload({**good, "samples_ms": samples})
    assert reason in e.value.reason
    # runs and samples_ms share the schema's 100,000 limit: whichever is checked first names it
    with pytest.raises(PayloadError, match="more than the 100000 allowed|greater than the maximum of 100000"):
        validate_payload({**good, "samples_ms": [1.0] * 100_001, "runs": 100_001})
    with pytest.raises(PayloadError, match="more than the 100000 allowed"):
        validate_payload({**good, "samples_ms": [1.0] * 100_001, "runs": 100_000})


def test_url_normalisation():
    assert normalize_url("postgresql://u@h:5/db") == "postgresql+psycopg://u@h:5/db"
    assert normalize_url(None).startswith("sqlite:///") and normalize_url(None).endswith("mobexport-results.db")
    from mobexport.exporter.errors import UsageError

    with pytest.raises(UsageError, match="unsupported"):
        normalize_url("mysql://x/y")
