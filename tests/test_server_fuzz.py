"""Property-based fuzzing of the results server's HTTP API with schemathesis, from the server's own OpenAPI
document, against the real server (uvicorn on 127.0.0.1) over a real SQLite file and, when
MOBEXPORT_TEST_PG_URL is set, a real PostgreSQL database. Whatever a client sends, the server answers with a
status and body its OpenAPI document declares, never a 5xx, and the database stays readable.

Bounded: ``MAX_EXAMPLES`` generated requests per operation, valid and invalid ones; no stateful phase."""

from __future__ import annotations

import os
from dataclasses import asdict

import httpx
import pytest

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402  (schemathesis brings hypothesis)
from schemathesis import GenerationMode, checks  # noqa: E402

from mobexport.benchmarks.results import compute_stats  # noqa: E402
from mobexport.benchmarks.server import create_app, serve_in_thread  # noqa: E402
from mobexport.exporter.errors import UsageError  # noqa: E402

from .test_server import AUTH, TOKEN, _write_artifact  # noqa: E402
from .test_store import _fresh_pg_url  # noqa: E402

CHECKS = [checks.not_a_server_error, checks.status_code_conformance, checks.content_type_conformance,
          checks.response_schema_conformance]
MAX_EXAMPLES = 40  # generated requests per operation and mode


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def fuzz_server(request, tmp_path_factory):
    """(base URL, OpenAPI schema) of a running server with two real exports and a few stored results."""
    if request.param == "sqlite":
        db = str(tmp_path_factory.mktemp("fuzz") / "fuzz.db")
    else:
        base = os.environ.get("MOBEXPORT_TEST_PG_URL")
        if not base:
            pytest.skip("MOBEXPORT_TEST_PG_URL not set: no PostgreSQL to test against (CI starts one)")
        db = _fresh_pg_url(base)
    root = tmp_path_factory.mktemp("exports")
    _write_artifact(root, "mobileone_s1", "onnx-fp32", "mobileone_s1.onnx")
    _write_artifact(root, "mobileone_s1", "coreml-fp16", "mobileone_s1.mlpackage", bundle=True)
    app = create_app(db, token=TOKEN, artifacts_dir=root)
    with serve_in_thread(app) as url:
        schema = schemathesis.openapi.from_url(f"{url}/openapi.json", headers=AUTH)
        yield url, schema, app.state.store
        app.state.store.close()


OPERATIONS = [("GET", "/api/v1/health"), ("GET", "/api/v1/artifacts"),
              ("GET", "/api/v1/artifacts/{model}/{target}/manifest"),
              ("GET", "/api/v1/artifacts/{model}/{target}/download"),
              ("POST", "/api/v1/results"), ("GET", "/api/v1/results"), ("GET", "/api/v1/results/{result_id}")]


def test_every_operation_is_fuzzed(fuzz_server):
    doc = httpx.get(f"{fuzz_server[0]}/openapi.json", headers=AUTH).json()  # behind the token like the API
    assert sorted((m.upper(), p) for p, ops in doc["paths"].items() for m in ops) == sorted(OPERATIONS)


# Operations with something to get wrong (a body, typed query or path parameters) are also sent invalid input.
CASES = [(m, p, GenerationMode.POSITIVE) for m, p in OPERATIONS] + [
    (m, p, GenerationMode.NEGATIVE) for m, p in OPERATIONS if m == "POST" or p.startswith("/api/v1/results")]


@pytest.mark.parametrize(("method", "path", "mode"), CASES, ids=[f"{m} {p} {g.value}" for m, p, g in CASES])
def test_any_request_gets_a_declared_answer_and_never_a_5xx(fuzz_server, method, path, mode):
    url, schema, _ = fuzz_server
    strategy = schema[path][method].as_strategy(generation_mode=mode)

    @settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(case=strategy)
    def fuzz(case):
        case.call_and_validate(base_url=url, headers=AUTH, checks=CHECKS)

    fuzz()


def _consistent(body):
    """The record with ``runs`` and the statistics made to agree with its samples, so that it passes the
    checks beyond the schema and reaches the database (schema-generated records almost never do)."""
    if not (isinstance(body, dict) and isinstance(body.get("samples_ms"), list) and body["samples_ms"]):
        return body
    try:
        stats = compute_stats(body["samples_ms"])
    except (UsageError, OverflowError, TypeError):
        return body
    return {**body, "runs": len(body["samples_ms"]), **asdict(stats)}


def test_schema_valid_records_are_stored_exactly_or_refused(fuzz_server):
    """Records straight from result.schema.json (any strings, integers and numbers it allows) with consistent
    statistics: each is stored and read back field for field, or refused with a 4xx naming the reason."""
    url, schema, _ = fuzz_server
    stored = []

    @settings(max_examples=MAX_EXAMPLES * 2, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(case=schema["/api/v1/results"]["POST"].as_strategy(generation_mode=GenerationMode.POSITIVE))
    def fuzz(case):
        case.body = _consistent(case.body)
        r = case.call_and_validate(base_url=url, headers=AUTH, checks=CHECKS)
        assert r.status_code in (201, 422), (r.status_code, r.text)
        if r.status_code == 201:
            back = httpx.get(f"{url}/api/v1/results/{r.json()['id']}", headers=AUTH).json()
            assert {k: back[k] for k in case.body} == case.body
            stored.append(r.json()["id"])

    fuzz()
    assert stored, "no generated record was accepted: the fuzzing never reached the database"


def test_database_still_reads_after_fuzzing(fuzz_server):
    url, _, store = fuzz_server
    listed = httpx.get(f"{url}/api/v1/results", headers=AUTH, params={"limit": 1000})
    assert listed.status_code == 200
    assert len(listed.json()) == min(store.count(), 1000)
    for row in listed.json()[:50]:
        one = httpx.get(f"{url}/api/v1/results/{row['id']}", headers=AUTH)
        assert one.status_code == 200 and len(one.json()["samples_ms"]) == row["runs"]
