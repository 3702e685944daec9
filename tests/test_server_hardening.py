"""The results server's remaining hardening (issue #18), against the real parts (uvicorn on 127.0.0.1, SQLite files,
PostgreSQL when MOBEXPORT_TEST_PG_URL is set, `mobexport serve` as its own process): stalled bodies time out with
408, bundles are zipped once per version, the OpenAPI document sits behind the API's rules and no CDN page is
served, limits and ids past the columns are 4xx, `serve` refuses a missing artifacts folder and a busy port with
exit 2, and a database that is newer or read-only is refused (or read) without a write."""

from __future__ import annotations

import contextlib
import io
import json
import os
import socket
import sqlite3
import stat
import subprocess
import sys
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from mobexport.benchmarks.results import BenchmarkResult
from mobexport.benchmarks.server import create_app, serve_in_thread
from mobexport.benchmarks.store import open_store
from mobexport.benchmarks.store import schema as sch
from mobexport.cli import main
from mobexport.exporter.errors import UsageError

from .test_server import AUTH, TOKEN, _example, _write_artifact
from .test_store import _fresh_pg_url

# ---------------------------------------------------------------- stalled request bodies


def _raw_post(url: str, declared: int, send: list[bytes], pause: float) -> tuple[bytes, float]:
    """POST over a raw socket: the headers (declaring ``declared`` body bytes), then the ``send`` pieces ``pause``
    seconds apart, never the rest. Returns (everything the server sent until it closed, seconds it took)."""
    host, port = url.rsplit("/", 1)[1].rsplit(":", 1)
    head = (f"POST /api/v1/results HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {declared}\r\n\r\n").encode()
    t0 = time.monotonic()
    with socket.create_connection((host, int(port)), timeout=30) as s:
        s.sendall(head)
        got = b""
        for piece in send:
            with contextlib.suppress(OSError):  # the server may have answered and closed already
                s.sendall(piece)
            time.sleep(pause)
        while chunk := s.recv(65536):  # until the server closes the connection (or the 30 s socket timeout)
            got += chunk
    return got, time.monotonic() - t0


def test_a_stalled_or_dripping_body_is_answered_408_and_closed(tmp_path):
    """Before: a client that stopped mid-body held its connection (and a server task) forever."""
    app = create_app(str(tmp_path / "r.db"), artifacts_dir=tmp_path, body_timeouts=(0.5, 2.0))
    with serve_in_thread(app) as url:
        stalled, took = _raw_post(url, 1000, [b'{"model": '], 0)
        assert stalled.startswith(b"HTTP/1.1 408"), stalled[:200]
        assert b"not received in time" in stalled and took < 15
        dripping, took = _raw_post(url, 1000, [b" "] * 12, 0.3)  # a byte every 0.3 s: under the idle limit
        assert dripping.startswith(b"HTTP/1.1 408"), dripping[:200]
        assert took < 15
        # a body that arrives in time is unaffected
        r = httpx.post(f"{url}/api/v1/results", json=_example("ios_result.json"))
        assert r.status_code == 201
    assert app.state.store.count() == 1


# ---------------------------------------------------------------- bundles zipped once per version


def _zips(app) -> list[Path]:
    return sorted(app.state.bundles.folder.glob("*.zip"))


def test_a_bundle_is_zipped_once_per_version(tmp_path):
    """Before: every download zipped the .mlpackage again into a new temporary file (four at once: four zips)."""
    root = tmp_path / "exports"
    folder = _write_artifact(root, "m", "coreml-fp16", "m.mlpackage", bundle=True)
    app = create_app(str(tmp_path / "r.db"), token=TOKEN, artifacts_dir=root)
    dl = "/api/v1/artifacts/m/coreml-fp16/download"
    with serve_in_thread(app) as url, httpx.Client(headers=AUTH, timeout=60) as c:
        first = c.get(url + dl)
        assert first.status_code == 200 and first.headers["content-type"] == "application/zip"
        (made,) = _zips(app)
        ident = (made.stat().st_ino, made.stat().st_mtime_ns)
        with ThreadPoolExecutor(4) as ex:
            again = list(ex.map(lambda _: c.get(url + dl).content, range(4)))
        assert again == [first.content] * 4
        assert _zips(app) == [made] and (made.stat().st_ino, made.stat().st_mtime_ns) == ident  # not re-made
        # a new export of the same model/target is a new version: zipped again, the old zip dropped
        (folder / "m.mlpackage" / "Data" / "weights.bin").write_bytes(b"\x03" * 300)
        manifest = json.loads((folder / "manifest.json").read_text())
        (folder / "manifest.json").write_text(json.dumps({**manifest, "created": "later"}))
        new = c.get(url + dl)
        assert new.status_code == 200 and new.content != first.content
        assert zipfile.ZipFile(io.BytesIO(new.content)).read("m.mlpackage/Data/weights.bin") == b"\x03" * 300
        assert len(_zips(app)) == 1 and _zips(app) != [made]
    assert not list(app.state.bundles.folder.glob("*.part"))


# ---------------------------------------------------------------- docs and the OpenAPI document


def test_openapi_document_follows_the_api_rules_and_no_cdn_page_is_served(tmp_path):
    """Before: /docs, /redoc and /openapi.json answered anyone, token or not, from any Host."""
    app = create_app(str(tmp_path / "t.db"), token=TOKEN, artifacts_dir=tmp_path)
    with serve_in_thread(app) as url:
        assert httpx.get(f"{url}/openapi.json").status_code == 401
        doc = httpx.get(f"{url}/openapi.json", headers=AUTH)
        assert doc.status_code == 200
        post = doc.json()["paths"]["/api/v1/results"]["post"]
        assert {"400", "401", "403", "408", "413", "415", "422"} <= set(post["responses"])
        assert post["requestBody"]["content"]["application/json"]["schema"]["required"]
        assert httpx.get(f"{url}/openapi.json", headers={**AUTH, "Origin": "http://evil.example"}).status_code == 403
        for page in ("/docs", "/redoc", "/docs/oauth2-redirect"):
            r = httpx.get(url + page, headers=AUTH)
            assert r.status_code == 404 and "cdn" not in r.text.lower(), page
    open_app = create_app(str(tmp_path / "o.db"), artifacts_dir=tmp_path)  # loopback, no token
    with serve_in_thread(open_app) as url:
        assert httpx.get(f"{url}/openapi.json").status_code == 200
        port = url.rsplit(":", 1)[1]
        assert httpx.get(f"{url}/openapi.json", headers={"Host": f"evil.example:{port}"}).status_code == 403


# ---------------------------------------------------------------- limits and ids


def test_limit_zero_and_numbers_past_the_columns_are_422(tmp_path):
    """``limit=0`` is refused (422), not "no limit"; ids, ``after`` and limits past 2**31-1 (the id column) or 2**63
    are 422, never a 5xx."""
    app = create_app(str(tmp_path / "l.db"), token=TOKEN, artifacts_dir=tmp_path)
    app.state.store.add(BenchmarkResult.from_dict(_example("ios_result.json")))
    with serve_in_thread(app) as url, httpx.Client(headers=AUTH) as c:
        for params in ({"limit": 0}, {"limit": -1}, {"limit": 2 ** 63}, {"limit": 2 ** 64 + 1}, {"after": 2 ** 63},
                       {"after": -(2 ** 63) - 1}, {"limit": "1e3"}):
            r = c.get(f"{url}/api/v1/results", params=params)
            assert r.status_code == 422, (params, r.status_code, r.text)
        for rid in (0, 2 ** 31, 2 ** 63, 2 ** 64, -(2 ** 63)):
            assert c.get(f"{url}/api/v1/results/{rid}").status_code == 422, rid
        assert len(c.get(f"{url}/api/v1/results", params={"limit": 1}).json()) == 1


# ---------------------------------------------------------------- mobexport serve: usage errors


def _serve(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    """`mobexport serve` as its own process; a server that starts instead of refusing runs into ``timeout``."""
    env = {k: v for k, v in os.environ.items() if k != "MOBEXPORT_TOKEN"}
    return subprocess.run([sys.executable, "-m", "mobexport", "serve", *args], capture_output=True, text=True,
                          timeout=timeout, env=env)


def test_serve_refuses_a_missing_artifacts_folder_and_a_busy_port(tmp_path):
    """Before: a missing --artifacts folder was served as an empty list, and a busy port exited 1 after the
    database had been opened (the issue saw 3)."""
    db = tmp_path / "s.db"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        free = str(s.getsockname()[1])
    missing = _serve("--db", str(db), "--port", free, "--artifacts", str(tmp_path / "nope"))
    assert missing.returncode == 2 and "nope" in missing.stderr and "does not exist" in missing.stderr
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    assert _serve("--db", str(db), "--port", free, "--artifacts", str(a_file)).returncode == 2
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        r = _serve("--db", str(db), "--port", str(port), "--artifacts", str(tmp_path))
    assert r.returncode == 2, r.stderr
    assert f"port {port} is in use" in r.stderr and "Traceback" not in r.stderr
    assert not db.exists()  # refused before the database was opened


# ---------------------------------------------------------------- newer and read-only databases


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def _pg_tables(url: str) -> set[str]:
    import sqlalchemy as sa

    eng = sa.create_engine(url)
    try:
        with eng.connect() as c:
            return set(sa.inspect(c).get_table_names())
    finally:
        eng.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def newer_db(request, tmp_path) -> str:
    """A results database a newer mobexport wrote: schema v99, one record, and a table this code does not know."""
    if request.param == "sqlite":
        url = str(tmp_path / "newer" / "results.db")
        Path(url).parent.mkdir()
    else:
        base = os.environ.get("MOBEXPORT_TEST_PG_URL")
        if not base:
            pytest.skip("MOBEXPORT_TEST_PG_URL not set: no PostgreSQL to test against (CI starts one)")
        url = _fresh_pg_url(base)
    with open_store(url, migrate_to=3) as store:  # v3: the v4 table is missing
        store.add(BenchmarkResult.from_dict(_example("ios_result.json")))
        with store.engine.begin() as c:
            c.execute(sch.version_table.update().values(version=99))
            c.exec_driver_sql("CREATE TABLE future_things (id INTEGER PRIMARY KEY)")
    return url


def test_a_newer_database_is_refused_untouched_with_exit_2(newer_db, tmp_path, capsys):
    """Before: the message did not name the database; opening it ran the migration transaction (and, on SQLite,
    the WAL set-up) before looking at the version."""
    sqlite = "://" not in newer_db
    def state():
        return _files(Path(newer_db).parent) if sqlite else _pg_tables(newer_db)

    before = state()
    assert main(["results", "--db", newer_db]) == 2
    err = capsys.readouterr().err
    assert "newer than this mobexport" in err and "v99" in err
    assert ("results.db" in err if sqlite else "mx_" in err)  # names the database (password-free)
    with pytest.raises(UsageError, match="newer"):
        create_app(newer_db, artifacts_dir=tmp_path)
    assert state() == before  # no byte changed, no file (-wal, -shm) or table added
    for read_only in (False, True):
        with pytest.raises(UsageError, match="newer than this mobexport"):
            open_store(newer_db, read_only=read_only)
    assert state() == before
    if not sqlite:
        assert "accuracy" not in before  # the v4 migration never ran


@contextlib.contextmanager
def _read_only(*paths: Path):
    """chmod a-w on ``paths`` for the block (restored after, so that pytest can clean up)."""
    modes = [p.stat().st_mode for p in paths]
    try:
        for p in paths:
            p.chmod(stat.S_IMODE(p.stat().st_mode) & ~0o222)
        yield
    finally:
        for p, m in zip(paths, modes, strict=True):
            p.chmod(stat.S_IMODE(m))


def _v1_database(folder: Path) -> Path:
    """A database an older mobexport wrote (schema v1), in WAL mode and closed cleanly, with two records."""
    folder.mkdir()
    db = folder / "old.db"
    with open_store(str(db), migrate_to=1) as store:
        for name in ("ios_result.json", "android_result.json"):
            store.add(BenchmarkResult.from_dict(_example(name)))
    return db


def test_a_read_only_database_is_read_without_a_write(tmp_path, capsys):
    """A file (0444) in a folder (0555) no one may write, as CI's user and as root (whom the mode bits do not stop,
    so mobexport honours them itself): `results` reads it, never migrating (it stays v1) nor creating -wal/-shm.
    Before: `results` migrated the database (a write) and could not read it at all where writing fails."""
    db = _v1_database(tmp_path / "ro")
    before = _files(db.parent)
    with _read_only(db, db.parent):
        assert main(["results", "--db", str(db), "--json"]) == 0
        rows = json.loads(capsys.readouterr().out)
        assert [r["harness"] for r in rows] == ["ios_app", "android_app"]
        assert main(["results", "--db", str(db), "--samples", str(rows[0]["id"]), "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["samples_ms"] == _example("ios_result.json")["samples_ms"]
        assert _files(db.parent) == before  # not migrated (still v1), no -wal or -shm made
        with open_store(str(db), read_only=True) as store:
            assert store.version == 1 and store.count() == 2
            with pytest.raises(UsageError, match="read-only"):
                store.add(BenchmarkResult.from_dict(_example("ios_result.json")))
        for writer in (lambda: open_store(str(db)), lambda: create_app(str(db), artifacts_dir=tmp_path)):
            with pytest.raises(UsageError, match="read-only"):
                writer()
        assert _files(db.parent) == before


@pytest.fixture
def read_only_mount(mount_tmpfs):
    """A small tmpfs that can be remounted read-only (a real read-only filesystem: root cannot write it either)."""
    return mount_tmpfs("mnt", "4m")


def test_a_database_on_a_read_only_filesystem_can_be_read(read_only_mount, tmp_path, capsys):
    db = _v1_database(read_only_mount / "data")
    export = _write_artifact(tmp_path / "exports", "mobileone_s1", "onnx-fp32", "mobileone_s1.onnx")
    subprocess.run(["mount", "-o", "remount,ro", str(read_only_mount)], check=True)
    with pytest.raises(OSError):  # really read-only, even for root
        (read_only_mount / "probe").write_text("x")
    assert main(["results", "--db", str(db), "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 2
    assert main(["bench", str(export), "--runs", "5", "--db", str(db)]) == 2  # a writer: refused, with the reason
    assert "read-only" in capsys.readouterr().err
    with sqlite3.connect(f"file:{db}?mode=ro&immutable=1", uri=True) as c:
        assert c.execute(f"SELECT version FROM {sch.VERSION_TABLE}").fetchone()[0] == 1
    c.close()


# ---------------------------------------------------------------- records stored before non-finite numbers were refused


def test_a_legacy_record_with_infinity_is_listed_as_strict_json(tmp_path, capsys):
    """A row an older mobexport stored with ``Infinity`` in mean_ms/std_ms/max_ms (as the issue found) and in a raw
    sample: the listing, the record and ``results --json`` are strict JSON (null there), not a 500 or ``Infinity``."""
    db = tmp_path / "legacy.db"
    with open_store(str(db)) as store:
        rid = store.add(BenchmarkResult.from_dict(_example("ios_result.json")))
    with sqlite3.connect(db) as c:  # what the old code wrote: SQLite REAL infinity, and "Infinity" in the JSON text
        c.execute("UPDATE results SET mean_ms = 9e999, std_ms = 9e999, max_ms = 9e999 WHERE id = ?", (rid,))
        raw = json.loads(c.execute("SELECT samples_ms FROM samples WHERE result_id = ?", (rid,)).fetchone()[0])
        c.execute("UPDATE samples SET samples_ms = ? WHERE result_id = ?", (json.dumps(raw + [float("inf")]), rid))
    c.close()
    strict = {"parse_constant": lambda name: pytest.fail(f"non-strict JSON constant {name}")}
    app = create_app(str(db), artifacts_dir=tmp_path)
    with serve_in_thread(app) as url:
        listed = httpx.get(f"{url}/api/v1/results")
        assert listed.status_code == 200, listed.text
        assert json.loads(listed.text, **strict)[0]["mean_ms"] is None
        one = httpx.get(f"{url}/api/v1/results/{rid}")
        assert one.status_code == 200 and json.loads(one.text, **strict)["samples_ms"][-1] is None
    assert main(["results", "--db", str(db), "--json"]) == 0
    row = json.loads(capsys.readouterr().out, **strict)[0]
    assert (row["mean_ms"], row["std_ms"], row["max_ms"]) == (None, None, None)
    assert main(["results", "--db", str(db)]) == 0  # the table shows min/p50/p90, all finite
