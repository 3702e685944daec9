"""Security regressions of the results server, the store and the commands around them, each against the real
parts (uvicorn on 127.0.0.1, SQLite files, PostgreSQL when MOBEXPORT_TEST_PG_URL is set): no database password
in any response or message, no poisoned or stray entry in the artifact listing, no cross-site or rebound write,
no foreign or broken database file opened (or created) behind the user's back, no bench run wasted on a token
the server will refuse."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import httpx
import pytest

from mobexport.benchmarks.server import create_app, serve_in_thread
from mobexport.benchmarks.store import open_store
from mobexport.benchmarks.store import redact_url as redact
from mobexport.cli import main
from mobexport.exporter.errors import UsageError

from .test_server import AUTH, TOKEN, _example, _write_artifact
from .test_store import _fresh_pg_url

PASSWORD = "hunter2-Pa55"


# ---------------------------------------------------------------- password leak

@pytest.fixture
def pg_url_with_password() -> str:
    base = os.environ.get("MOBEXPORT_TEST_PG_URL")
    if not base:
        pytest.skip("MOBEXPORT_TEST_PG_URL not set: no PostgreSQL to test against (CI starts one)")
    url = _fresh_pg_url(base)  # the CI cluster trusts local users, so any password connects
    user, rest = url.split("://", 1)[1].split("@", 1)
    return f"postgresql://{user}:{PASSWORD}@{rest}"


def test_responses_and_messages_never_carry_the_db_password(pg_url_with_password, tmp_path, capsys):
    app = create_app(pg_url_with_password, token=TOKEN, artifacts_dir=tmp_path)
    with serve_in_thread(app) as url:
        bodies = [httpx.get(f"{url}/api/v1/results/424242", headers=AUTH),
                  httpx.get(f"{url}/api/v1/health", headers=AUTH),
                  httpx.post(f"{url}/api/v1/results", json={"model": 1}, headers=AUTH)]
    assert bodies[0].status_code == 404
    for r in bodies:
        assert PASSWORD not in r.text
    assert main(["results", "--db", pg_url_with_password, "--samples", "424242"]) == 2
    out = capsys.readouterr()
    assert PASSWORD not in out.out + out.err and "424242" in out.err
    with pytest.raises(UsageError) as e:
        open_store(pg_url_with_password.rsplit("/", 1)[0] + "/no_such_db_here")
    assert PASSWORD not in str(e.value)


@pytest.mark.parametrize("url", [
    f"postgresql+psycopg://me:{PASSWORD}@db.example:5432/x",
    f"postgresql+psycopg://me:{PASSWORD.replace('-', '@')}@db.example/x",  # an unescaped '@' in the password
    f"postgresql+psycopg://me@db.example/x?password={PASSWORD}&sslmode=require",
    f"postgresql+psycopg://me:{PASSWORD}@/x?host=/tmp",
])
def test_redacted_urls_hide_every_form_of_password(url):
    shown = redact(url)
    assert not any(part in shown for part in PASSWORD.split("-")), shown
    assert "db.example" in shown or "host=/tmp" in shown


# ---------------------------------------------------------------- poisoned listing, stray manifests

@pytest.fixture
def poisoned(tmp_path) -> Path:
    """One good export and every way a folder under exports/ can lie about what it serves."""
    root = tmp_path / "exports"
    _write_artifact(root, "mobileone_s1", "onnx-fp32", "mobileone_s1.onnx")
    secret = tmp_path / "secret.json"
    secret.write_text(json.dumps({"artifact": "x.onnx", "model": "leak", "target": "onnx-fp32",
                                  "db_password": PASSWORD}))
    leak = _write_artifact(root, "leak", "onnx-fp32", "x.onnx")
    (leak / "manifest.json").unlink()
    (leak / "manifest.json").symlink_to(secret)  # a manifest that is really a file outside exports/
    spoof = _write_artifact(root, "spoof", "onnx-fp32", "x.onnx")  # claims to be another model's artifact
    (spoof / "manifest.json").write_text(json.dumps({"model": "mobileone_s1", "target": "onnx-fp32",
                                                     "artifact": "x.onnx"}))
    listy = _write_artifact(root, "listy", "onnx-fp32", "x.onnx")
    (listy / "manifest.json").write_text(json.dumps(["not", "a", "manifest"]))
    gone = _write_artifact(root, "gone", "onnx-fp32", "x.onnx")
    (gone / "x.onnx").unlink()  # its artifact is missing: nothing an app could download
    # What a killed export leaves behind: staging and replaced folders, complete with manifest and artifact.
    for stray in (".onnx-fp32.tmp-999999999-abc", ".onnx-fp32.old-999999999"):
        d = _write_artifact(root, "mobileone_s1", stray, "mobileone_s1.onnx")
        (d / "manifest.json").write_text(json.dumps({"model": "mobileone_s1", "target": "onnx-fp32",
                                                     "artifact": "mobileone_s1.onnx", "stray": True}))
    _write_artifact(root, ".hidden", "onnx-fp32", "x.onnx")
    return root


def test_listing_holds_only_what_the_server_would_serve(tmp_path, poisoned):
    app = create_app(str(tmp_path / "r.db"), token=TOKEN, artifacts_dir=poisoned)
    with serve_in_thread(app) as url:
        listed = httpx.get(f"{url}/api/v1/artifacts", headers=AUTH)
        assert listed.status_code == 200 and PASSWORD not in listed.text
        assert [(m["model"], m["target"]) for m in listed.json()] == [("mobileone_s1", "onnx-fp32")]
        assert "stray" not in listed.json()[0]
        for model in ("leak", "spoof", "listy", "gone"):
            for what in ("manifest", "download"):
                r = httpx.get(f"{url}/api/v1/artifacts/{model}/onnx-fp32/{what}", headers=AUTH)
                assert r.status_code == 404, (model, what, r.status_code, r.text)
                assert PASSWORD not in r.text


def test_bench_never_picks_up_staging_folders(poisoned):
    from mobexport.benchmarks.harness import find_artifacts

    found = find_artifacts(poisoned / "mobileone_s1")
    assert [(a.target, a.path.parent.name) for a in found] == [("onnx-fp32", "onnx-fp32")]
    assert all("stray" not in a.manifest for a in found)


def test_a_new_export_clears_staging_folders_of_dead_exports(tmp_path):
    from mobexport.converters.pipeline import _publish, _staging

    final = tmp_path / "exports" / "m" / "onnx-fp32"
    final.parent.mkdir(parents=True)
    dead = [final.parent / ".onnx-fp32.tmp-999999999-abcd", final.parent / ".onnx-fp32.old-999999999"]
    alive = final.parent / f".onnx-fp32.tmp-{os.getppid()}-live"  # a concurrent export still running
    other = final.parent / ".tflite-fp32.tmp-999999999-abcd"  # another target's: not this export's business
    for d in (*dead, alive, other):
        d.mkdir()
        (d / "manifest.json").write_text("{}")
    with _staging(final) as staging:
        (staging / "manifest.json").write_text("{}")
        _publish(staging, final)
    assert sorted(p.name for p in final.parent.iterdir()) == sorted(["onnx-fp32", alive.name, other.name])


# ---------------------------------------------------------------- cross-site writes

def test_cross_site_and_rebound_writes_are_refused(tmp_path):
    app = create_app(str(tmp_path / "open.db"), artifacts_dir=tmp_path)  # loopback, no token
    good = json.dumps(_example("ios_result.json")).encode()
    with serve_in_thread(app) as url:
        ep = f"{url}/api/v1/results"
        port = url.rsplit(":", 1)[1]
        # an HTML form or fetch(no-cors) from any web page: a "simple" request that needs no preflight
        for ctype in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", None):
            headers = {"Content-Type": ctype} if ctype else {}
            r = httpx.post(ep, content=good, headers=headers)
            assert r.status_code == 415, (ctype, r.status_code)
        r = httpx.post(ep, content=good, headers={"Content-Type": "application/json",
                                                  "Origin": "http://evil.example"})
        assert r.status_code == 403
        # DNS rebinding: evil.example resolves to 127.0.0.1, so the browser calls it same-origin
        rebound = {"Host": f"evil.example:{port}", "Origin": f"http://evil.example:{port}",
                   "Content-Type": "application/json"}
        assert httpx.post(ep, content=good, headers=rebound).status_code == 403
        assert httpx.get(f"{url}/api/v1/results", headers={"Host": f"evil.example:{port}"}).status_code == 403
        assert httpx.get(f"{url}/api/v1/health").json()["results"] == 0
        # what the apps and `mobexport bench --post` send
        r = httpx.post(ep, content=good, headers={"Content-Type": "application/json; charset=utf-8"})
        assert r.status_code == 201, r.text
        same = httpx.post(ep, content=good, headers={"Content-Type": "application/json", "Origin": url})
        assert same.status_code == 201, same.text


# ---------------------------------------------------------------- bad database files

def _bad_files(tmp_path: Path) -> dict[str, Path]:
    text = tmp_path / "notes.txt"
    text.write_text("this is not a database\n" * 100)
    foreign = tmp_path / "photos.db"
    with sqlite3.connect(foreign) as c:
        c.execute("CREATE TABLE photos (id INTEGER PRIMARY KEY, path TEXT)")
        c.execute("INSERT INTO photos (path) VALUES ('a.jpg')")
    c.close()
    truncated = tmp_path / "truncated.db"
    with open_store(str(truncated)) as s:
        s.count()
    truncated.write_bytes(truncated.read_bytes()[:200])
    folder = tmp_path / "a-folder.db"
    folder.mkdir()
    return {"text": text, "foreign": foreign, "truncated": truncated, "folder": folder}


def test_bad_database_files_are_refused_and_left_alone(tmp_path, capsys):
    export = _write_artifact(tmp_path / "exports", "mobileone_s1", "onnx-fp32", "mobileone_s1.onnx")
    for kind, path in _bad_files(tmp_path).items():
        before = None if path.is_dir() else path.read_bytes()
        with pytest.raises(UsageError, match="results database"):
            open_store(str(path))
        with pytest.raises(UsageError, match="results database"):
            create_app(str(path), artifacts_dir=tmp_path)
        assert main(["results", "--db", str(path)]) == 2, kind
        assert main(["bench", str(export), "--runs", "5", "--db", str(path)]) == 2, kind  # before any timing
        err = capsys.readouterr().err
        assert "Traceback" not in err and str(path.name) in err, (kind, err)
        assert before is None or path.read_bytes() == before, kind
    with sqlite3.connect(tmp_path / "photos.db") as c:
        assert [r[0] for r in c.execute("SELECT name FROM sqlite_master WHERE type='table'")] == ["photos"]
    c.close()


def test_results_refuses_a_database_that_does_not_exist(tmp_path, capsys):
    missing = tmp_path / "typo.db"
    assert main(["results", "--db", str(missing)]) == 2
    assert "no results database" in capsys.readouterr().err
    assert not missing.exists() and not list(tmp_path.iterdir())


# ---------------------------------------------------------------- bench --post

def test_bench_post_checks_the_token_before_timing_anything(tmp_path, capsys):
    export = _write_artifact(tmp_path / "exports", "mobileone_s1", "onnx-fp32", "mobileone_s1.onnx")
    db = tmp_path / "bench.db"
    app = create_app(str(tmp_path / "server.db"), token=TOKEN, artifacts_dir=tmp_path)
    with serve_in_thread(app) as url:
        for token in ([], ["--token", "wrong"]):
            code = main(["bench", str(export), "--runs", "5", "--db", str(db), "--post", url, *token])
            assert code == 2
            err = capsys.readouterr().err
            assert "token" in err and TOKEN not in err
        assert not db.exists()  # refused before the store was opened, let alone a timing run
        assert main(["bench", str(export), "--runs", "5", "--db", str(db), "--post", "http://127.0.0.1:1"]) == 2
        assert "cannot reach" in capsys.readouterr().err
        assert app.state.store.count() == 0
