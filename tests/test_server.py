"""The results server, run for real (uvicorn on a free 127.0.0.1 port in a thread): artifacts out, results in,
read back through ``mobexport results --json``."""

from __future__ import annotations

import io
import json
import os
import zipfile
from pathlib import Path

import httpx
import pytest

from mobexport.benchmarks.results import BenchmarkResult
from mobexport.benchmarks.server import create_app, post_result, serve_in_thread
from mobexport.cli import main
from mobexport.exporter.errors import UsageError

EXAMPLES = Path(__file__).resolve().parents[1] / "benchmarks" / "schema" / "examples"
TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def _write_artifact(root: Path, model: str, target: str, name: str, bundle: bool = False) -> Path:
    d = root / model / target
    d.mkdir(parents=True)
    if bundle:
        (d / name / "Data").mkdir(parents=True)
        (d / name / "Manifest.json").write_text("{}")
        (d / name / "Data" / "weights.bin").write_bytes(b"\x01\x02" * 100)
    else:
        (d / name).write_bytes(b"ONNX" + bytes(range(256)))
    (d / "manifest.json").write_text(json.dumps({"model": model, "target": target, "artifact": name,
                                                 "input": {"name": "input", "shape": [1, 3, 224, 224]}}))
    return d


@pytest.fixture
def exports(tmp_path) -> Path:
    root = tmp_path / "exports"
    _write_artifact(root, "mobileone_s1", "onnx-fp32", "mobileone_s1.onnx")
    _write_artifact(root, "mobileone_s1", "coreml-fp16", "mobileone_s1.mlpackage", bundle=True)
    evil = _write_artifact(root, "evil", "onnx-fp32", "x.onnx")
    (tmp_path / "secret.txt").write_text("do not serve")
    manifest = json.loads((evil / "manifest.json").read_text())
    (evil / "manifest.json").write_text(json.dumps({**manifest, "artifact": "../../../secret.txt"}))
    link = _write_artifact(root, "linked", "onnx-fp32", "x.onnx")
    (link / "x.onnx").unlink()
    (link / "x.onnx").symlink_to(tmp_path / "secret.txt")
    return root


@pytest.fixture
def server(tmp_path, exports):
    db = str(tmp_path / "server.db")
    app = create_app(db, token=TOKEN, artifacts_dir=exports)
    with serve_in_thread(app) as url:
        yield url, db, app.state.store


def _example(name: str) -> dict:
    return json.loads((EXAMPLES / name).read_text())


def test_post_examples_and_read_back_through_cli(server, capsys):
    url, db, _ = server
    ids = []
    for name in ("ios_result.json", "android_result.json"):
        r = httpx.post(f"{url}/api/v1/results", json=_example(name), headers=AUTH)
        assert r.status_code == 201, r.text
        ids.append(r.json()["id"])
    listed = httpx.get(f"{url}/api/v1/results", headers=AUTH).json()
    assert [x["harness"] for x in listed] == ["ios_app", "android_app"]
    one = httpx.get(f"{url}/api/v1/results/{ids[0]}", headers=AUTH).json()
    assert one["samples_ms"] == _example("ios_result.json")["samples_ms"]

    assert main(["results", "--db", db, "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["model"], r["target"], r["harness"]) for r in rows] == [
        ("mobileone_s1", "coreml-fp16", "ios_app"), ("mobileone_s1", "tflite-fp32", "android_app")]
    for r, name in zip(rows, ("ios_result.json", "android_result.json"), strict=True):
        ex = _example(name)
        assert (r["runs"], r["min_ms"], r["p50_ms"]) == (ex["runs"], ex["min_ms"], ex["p50_ms"])
    assert main(["results", "--db", db, "--json", "--harness", "android_app"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 1
    assert main(["results", "--db", db, "--json", "--samples", str(ids[1])]) == 0
    assert json.loads(capsys.readouterr().out)["samples_ms"] == _example("android_result.json")["samples_ms"]


def test_bad_posts_are_refused_and_nothing_is_written(server):
    url, _, store = server
    good = _example("android_result.json")
    ep = f"{url}/api/v1/results"
    assert httpx.post(ep, json=good).status_code == 401
    assert httpx.post(ep, json=good, headers={"Authorization": "Bearer wrong"}).status_code == 401
    json_auth = {**AUTH, "Content-Type": "application/json"}
    assert httpx.post(ep, content=b"{not json", headers=json_auth).status_code == 400
    r = httpx.post(ep, json={**good, "harness": "browser"}, headers=AUTH)
    assert r.status_code == 422 and "harness" in r.json()["detail"]
    r = httpx.post(ep, json={k: v for k, v in good.items() if k != "min_ms"}, headers=AUTH)
    assert r.status_code == 422 and "min_ms" in r.json()["detail"]
    big = {**good, "notes": None, "samples_ms": [1.2345678] * 500_000, "runs": 500_000}  # ~5 MB, over 4 MiB
    assert httpx.post(ep, json=big, headers=AUTH).status_code == 413

    def chunks():  # no Content-Length: the limit applies while streaming
        for _ in range(80):  # 5 MiB
            yield b" " * 65536
    assert httpx.post(ep, content=chunks(), headers=json_auth).status_code == 413
    assert store.count() == 0
    assert httpx.get(f"{url}/api/v1/results", headers=AUTH).json() == []


def test_artifacts_listing_download_and_traversal(server, exports):
    url, _, _ = server
    assert httpx.get(f"{url}/api/v1/artifacts").status_code == 401
    listed = httpx.get(f"{url}/api/v1/artifacts", headers=AUTH).json()
    assert sorted((m["model"], m["target"]) for m in listed) == [  # not evil/ nor linked/: they cannot be served
        ("mobileone_s1", "coreml-fp16"), ("mobileone_s1", "onnx-fp32")]
    m = httpx.get(f"{url}/api/v1/artifacts/mobileone_s1/onnx-fp32/manifest", headers=AUTH).json()
    assert m["artifact"] == "mobileone_s1.onnx"
    r = httpx.get(f"{url}/api/v1/artifacts/mobileone_s1/onnx-fp32/download", headers=AUTH)
    assert r.status_code == 200
    assert r.content == (exports / "mobileone_s1" / "onnx-fp32" / "mobileone_s1.onnx").read_bytes()
    r = httpx.get(f"{url}/api/v1/artifacts/mobileone_s1/coreml-fp16/download", headers=AUTH)
    assert r.status_code == 200 and r.headers["content-type"] == "application/zip"
    names = sorted(zipfile.ZipFile(io.BytesIO(r.content)).namelist())
    assert names == ["mobileone_s1.mlpackage/Data/weights.bin", "mobileone_s1.mlpackage/Manifest.json"]
    for bad in ("evil/onnx-fp32", "linked/onnx-fp32", "..%2F..%2Fsecret/x", "mobileone_s1/..",
                "%2E%2E/onnx-fp32", "nope/onnx-fp32"):
        r = httpx.get(f"{url}/api/v1/artifacts/{bad}/download", headers=AUTH)
        assert r.status_code in (400, 404), (bad, r.status_code)
        assert b"do not serve" not in r.content


def test_post_result_client_helper(server):
    url, _, store = server
    rid = post_result(url, _example("ios_result.json"), token=TOKEN)
    assert store.get(rid).result.harness == "ios_app"
    with pytest.raises(UsageError, match="401"):
        post_result(url, _example("ios_result.json"), token="wrong")
    with pytest.raises(UsageError, match="422"):
        post_result(url + "/api/v1/results", {**_example("ios_result.json"), "runs": 3}, token=TOKEN)


def test_open_server_without_token_is_refused(tmp_path):
    assert main(["serve", "--host", "0.0.0.0", "--db", str(tmp_path / "x.db")]) == 2
    assert not (tmp_path / "x.db").exists()


def test_server_without_token_accepts_posts(tmp_path):
    os.environ.pop("MOBEXPORT_TOKEN", None)
    app = create_app(str(tmp_path / "open.db"), artifacts_dir=tmp_path)
    with serve_in_thread(app) as url:
        assert httpx.post(f"{url}/api/v1/results", json=_example("ios_result.json")).status_code == 201
        assert httpx.get(f"{url}/api/v1/health").json()["results"] == 1
        assert httpx.get(f"{url}/api/v1/artifacts").json() == []


@pytest.mark.parametrize(("field", "value", "reason"), [
    ("threads", 2 ** 64, "32-bit"), ("batch_size", 2 ** 31, "32-bit"), ("warmup", 2 ** 40, "32-bit"),
    ("notes", "a\x00b", "NUL"), ("device_model", "\x00", "NUL"), ("tool_versions", {"app\x00": "1"}, "NUL"),
    ("notes", "\ud800", "UTF-8"), ("load_ms", float("inf"), "finite"), ("load_ms", float("nan"), "finite"),
    ("timestamp", "2025-01-01T00:00:00." + "1" * 80 + "Z", "64 characters"),
    ("samples_ms", [0.5, 10 ** 400], "finite"),  # an integer no float holds (was a 500 when stored)
])
def test_values_no_database_can_hold_are_422_not_500(server, field, value, reason):
    """Schema-valid values that SQLite or PostgreSQL cannot store (found by tests/test_server_fuzz.py): an
    integer past the 32-bit columns, NUL in text, a lone surrogate, a non-finite number (JSON 1e400 or NaN)."""
    url, _, store = server
    body = json.dumps({**_example("android_result.json"), field: value}, allow_nan=True)
    r = httpx.post(f"{url}/api/v1/results", content=body.encode("utf-8", "surrogatepass"),
                   headers={**AUTH, "Content-Type": "application/json"})
    assert r.status_code == 422, r.text
    assert reason in r.json()["detail"] and field in r.json()["detail"]
    assert store.count() == 0


@pytest.mark.parametrize("body", [b"[" * 200_000, b'{"runs": 1' + b"0" * 5000 + b"}", b"\xff\xfe{}"],
                         ids=["nested-200k-deep", "5000-digit-integer", "not-utf8"])
def test_json_python_cannot_parse_is_400_not_500(server, body):
    url, _, store = server
    r = httpx.post(f"{url}/api/v1/results", content=body, headers={**AUTH, "Content-Type": "application/json"})
    assert r.status_code == 400, r.text
    assert "malformed JSON" in r.json()["detail"] and store.count() == 0


@pytest.mark.parametrize(("field", "value"), [("warmup", 237244336495610.0), ("input_shape", [1, 3, 2.0 ** 40, 1]),
                                              ("batch_size", 2.0 ** 31)])
def test_integral_floats_past_32_bits_are_422(server, field, value):
    """JSON Schema's "integer" takes 237244336495610.0; PostgreSQL's INTEGER column does not (found by the fuzz
    test on PostgreSQL as a 500)."""
    url, _, store = server
    r = httpx.post(f"{url}/api/v1/results", json={**_example("ios_result.json"), field: value}, headers=AUTH)
    assert r.status_code == 422 and "32-bit" in r.json()["detail"] and field in r.json()["detail"], r.text
    assert store.count() == 0


def test_results_listing_is_paged(tmp_path):
    """GET /results answers at most a page of records unless ?limit= asks for more; ?after=ID continues, so a
    full database is never serialised in one answer (results/server_health.md)."""
    page = 3
    app = create_app(str(tmp_path / "paged.db"), artifacts_dir=tmp_path, page=page)
    ids = [app.state.store.add(BenchmarkResult.from_dict(_example("ios_result.json"))) for _ in range(page + 2)]
    with serve_in_thread(app) as url:
        first = httpx.get(f"{url}/api/v1/results").json()
        assert [r["id"] for r in first] == ids[:page]
        rest = httpx.get(f"{url}/api/v1/results", params={"after": first[-1]["id"]}).json()
        assert [r["id"] for r in rest] == ids[page:]
        two = httpx.get(f"{url}/api/v1/results", params={"after": ids[0], "limit": 2}).json()
        assert [r["id"] for r in two] == ids[1:3]
        assert len(httpx.get(f"{url}/api/v1/results", params={"limit": page + 2}).json()) == page + 2
