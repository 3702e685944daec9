"""The results store: SQLite by default (``./mobexport-results.db``), PostgreSQL by URL.

``open_store(url)`` migrates the database to the current schema and returns a ``ResultStore``:
``add(result) -> id``, ``query(...)``, ``get(id)``, ``samples(id)``, ``count()``. A record and its raw samples
are written in one transaction (nothing half-written). SQLite runs in WAL mode with a busy timeout, every
write transaction starts with ``BEGIN IMMEDIATE`` and is retried while the database is locked, so concurrent
writer processes lose no row.

``open_store(url, read_only=True)`` (readers such as ``mobexport results``) never migrates or writes: a SQLite
file is opened ``mode=ro``, and ``immutable`` when it or its folder cannot be written, so a database on a
read-only disk, or a file and folder without write permission, can be read. A database that is not ours
(corrupt, foreign) or newer than this code is refused untouched with a UsageError (exit 2).
"""

from __future__ import annotations

import json
import math
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from mobexport.benchmarks.results import BenchmarkResult, validate_payload
from mobexport.exporter.errors import UsageError

from . import schema as sch

__all__ = ["DEFAULT_DB", "ResultStore", "StoredResult", "normalize_url", "open_store", "redact_url"]

DEFAULT_DB = "mobexport-results.db"
T = TypeVar("T")
_JSON_COLUMNS = ("input_shape", "tool_versions")


def normalize_url(url: str | None) -> str:
    """None → the default SQLite file; a bare path → SQLite file; ``postgresql://`` → psycopg 3 driver."""
    url = url or DEFAULT_DB
    if "://" not in url:
        return f"sqlite:///{Path(url).expanduser()}"
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    if url.startswith(("sqlite://", "postgresql+psycopg://")):
        return url
    raise UsageError(f"unsupported database URL '{url}'",
                     hint="use a file path, sqlite:///FILE or postgresql://user@host:port/db")


def _sqlite_path(url: str) -> Path | None:
    """The file of a ``sqlite:///FILE`` URL; None for an in-memory database."""
    db = url.split(":///", 1)[-1]
    return Path(db) if db and db != ":memory:" else None


def _writable(db: Path) -> bool:
    """Whether ``db`` (when it exists) and its folder may be written: by ``os.access`` (a read-only filesystem,
    another owner) and by their mode bits, so that a file or folder no one may write (``chmod a-w``) is read-only
    for root too, whom ``os.access`` lets write anything."""
    for p in (db, db.parent) if db.exists() else (db.parent,):
        if not os.access(p, os.W_OK) or not p.stat().st_mode & 0o222:
            return False
    return True


def _sqlite_ro_uri(db: Path, *, probe: bool = False) -> str:
    """A read-only SQLite URI for ``db``; ``immutable`` (no lock, no ``-wal``/``-shm`` file made) when nothing can
    be pending in a write-ahead log and either the file or its folder cannot be written (``mode=ro`` alone needs a
    ``-shm`` next to a WAL database, which a read-only folder cannot get, and root would make one in a folder
    marked read-only) or it is only a ``probe`` of a database no one has open (no ``-wal`` file): a database that
    is refused must be left without the two files a read-only WAL connection leaves behind."""
    from urllib.parse import quote

    wal = db.with_name(db.name + "-wal")
    if probe:
        immutable = not wal.exists()
    else:
        immutable = not _writable(db) and (not wal.exists() or wal.stat().st_size == 0)
    return f"file:{quote(str(db.resolve()))}?mode=ro{'&immutable=1' if immutable else ''}"


def _sqlite_engine(url: str, *, read_only: bool = False):
    import sqlalchemy as sa

    if read_only:
        import sqlite3

        uri = _sqlite_ro_uri(_sqlite_path(url))
        engine = sa.create_engine("sqlite://", poolclass=sa.pool.NullPool,
                                  creator=lambda: sqlite3.connect(uri, uri=True, timeout=60, check_same_thread=False))

        @sa.event.listens_for(engine, "connect")
        def _on_ro_connect(dbapi_conn, _record):
            dbapi_conn.execute("PRAGMA busy_timeout = 60000")

        return engine
    engine = sa.create_engine(url, connect_args={"timeout": 60})

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA busy_timeout = 60000")
        cur.execute("PRAGMA journal_mode = WAL")
        cur.execute("PRAGMA foreign_keys = ON")
        cur.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(conn):
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def _check_sqlite_file(db: Path, *, create: bool, read_only: bool = False) -> None:
    """Refuse, before anything opens it for writing (WAL mode rewrites the header), a path that is not a
    mobexport SQLite database: a folder, another kind of file, a damaged database, another program's
    database (tables but no ``mobexport_schema``), one written by a newer mobexport, or, unless ``read_only``,
    one that cannot be written. A missing file is created only when ``create``."""
    import sqlite3

    if not db.exists():
        if not create:
            raise UsageError(f"no results database {db}", hint="pass --db with an existing database (results are "
                             "written by 'mobexport bench' and 'mobexport serve')")
        if not db.parent.is_dir():
            raise UsageError(f"cannot create results database {db}: folder {db.parent} does not exist")
        return
    if not db.is_file():
        raise UsageError(f"results database {db} is not a file")
    with open(db, "rb") as fh:
        head = fh.read(16)
    if head and head != b"SQLite format 3\x00":
        raise UsageError(f"results database {db} is not a SQLite database file")
    try:
        probe = sqlite3.connect(_sqlite_ro_uri(db, probe=True), uri=True, timeout=60)
        try:
            tables = {r[0] for r in probe.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            version = (probe.execute(f"SELECT max(version) FROM {sch.VERSION_TABLE}").fetchone()[0]
                       if sch.VERSION_TABLE in tables else 0)
        finally:
            probe.close()
    except sqlite3.Error as e:
        raise UsageError(f"results database {db} cannot be read: {e}") from e
    if tables and sch.VERSION_TABLE not in tables:
        raise UsageError(f"results database {db} belongs to another program (tables: "
                         f"{', '.join(sorted(tables)[:5])}); mobexport leaves it alone",
                         hint="pass --db with a mobexport results database or a new file name")
    sch.refuse_newer(int(version or 0), f"results database {db}")
    if not read_only and not _writable(db):
        raise UsageError(f"results database {db} is read-only (no write permission on the file or its folder)",
                         hint="'mobexport results' can read it; to add results, pass --db with a writable file")


def _make_engine(url: str, *, create: bool = True, read_only: bool = False):
    import sqlalchemy as sa

    if url.startswith("sqlite"):
        db = _sqlite_path(url)
        if db is not None:
            _check_sqlite_file(db, create=create and not read_only, read_only=read_only)
        return _sqlite_engine(url, read_only=read_only and db is not None)
    try:
        return sa.create_engine(url, pool_pre_ping=True)
    except ImportError as e:  # psycopg missing
        from mobexport.exporter.errors import TargetUnavailableError

        raise TargetUnavailableError(f"PostgreSQL driver unavailable: {e}",
                                     hint="pip install 'mobexport[postgres]'") from e


def _is_transient(exc: Exception) -> bool:
    msg = str(exc).lower()
    return any(s in msg for s in ("database is locked", "database is busy", "deadlock detected",
                                  "could not serialize", "database table is locked"))


@dataclass
class StoredResult:
    id: int
    result: BenchmarkResult
    created_at: str | None = None

    def to_dict(self, *, samples: bool = False) -> dict[str, Any]:
        """The record as strict JSON can carry it: a non-finite number, which only a record stored before the
        store refused them can hold (``Infinity`` in ``mean_ms``), is None, so that the listing and ``results
        --json`` stay readable by strict parsers."""
        d = {"id": self.id, **self.result.to_dict(samples=samples)}
        for k, v in d.items():
            if isinstance(v, float) and not math.isfinite(v):
                d[k] = None
            elif k == "samples_ms" and not all(math.isfinite(x) for x in v):
                d[k] = [x if math.isfinite(x) else None for x in v]
        return d


class ResultStore:
    def __init__(self, url: str | None = None, *, migrate_to: int | None = None, create: bool = True,
                 read_only: bool = False):
        self.url = normalize_url(url)
        self.read_only = read_only
        self.engine = _make_engine(self.url, create=create, read_only=read_only)
        import sqlalchemy.exc as sa_exc

        try:
            self.version = self._retry(self._read_version if read_only else
                                       lambda: self._migrate(migrate_to or sch.LATEST))
        except sa_exc.DatabaseError as e:  # OperationalError, and 'file is not a database' / malformed image
            self.engine.dispose()
            raise UsageError(f"cannot open results database {redact_url(self.url)}: {str(e.orig or e)[:300]}") from e
        except UsageError:
            self.engine.dispose()
            raise

    # -- plumbing ---------------------------------------------------------------------------------------
    def _migrate(self, to_version: int) -> int:
        with self.engine.begin() as conn:
            return sch.migrate(conn, to_version, name=f"results database {redact_url(self.url)}")

    def _read_version(self) -> int:
        """The schema version, read without a write (read-only stores never migrate)."""
        with self.engine.connect() as conn:
            version = sch.current_version(conn)
        sch.refuse_newer(version, f"results database {redact_url(self.url)}")
        if version == 0:
            raise UsageError(f"results database {redact_url(self.url)} holds no mobexport results (no "
                             f"{sch.VERSION_TABLE} table)", hint="results are written by 'mobexport bench' and "
                                                                 "'mobexport serve'")
        return version

    def _retry(self, fn: Callable[[], T], attempts: int = 40) -> T:
        import sqlalchemy.exc as sa_exc

        for i in range(attempts):
            try:
                return fn()
            except sa_exc.OperationalError as e:
                if not _is_transient(e) or i == attempts - 1:
                    raise
                time.sleep(min(2.0, 0.01 * 2 ** i) * (0.5 + random.random()))
        raise AssertionError("unreachable")

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> ResultStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- writes -----------------------------------------------------------------------------------------
    def add(self, result: BenchmarkResult) -> int:
        """Insert one record and its raw samples atomically; returns the new id. Refuses (PayloadError) a
        record that does not follow result.schema.json."""

        def _tx() -> int:
            with self.engine.begin() as conn:
                return self.insert_result(conn, result)

        return self._retry(_tx)

    def insert_result(self, conn, result: BenchmarkResult) -> int:
        """Insert one record and its raw samples inside the caller's transaction ``conn`` (``add``, and a sweep
        cell that is closed in the same transaction: store/cells.py); returns the new id."""
        self._check_writable()
        validate_payload(result.to_dict())
        row = result.to_dict(samples=False)
        if self.version < 2:
            row.pop("thermal_state_before", None)
            row.pop("thermal_state_after", None)
        for k in _JSON_COLUMNS:
            row[k] = json.dumps(row[k])
        rid = conn.execute(sch.results.insert().values(**row).returning(sch.results.c.id)).scalar_one()
        conn.execute(sch.samples.insert().values(result_id=rid, n=len(result.samples_ms),
                                                 samples_ms=json.dumps([float(x) for x in result.samples_ms])))
        return int(rid)

    def _check_writable(self) -> None:
        if self.read_only:
            raise UsageError(f"results database {redact_url(self.url)} was opened read-only")

    def add_lookup_table(self, table: dict[str, Any]) -> int:
        """Store a per-block latency lookup table (``LatencyTable.to_dict()``) with its provenance."""
        self._check_writable()
        if self.version < 3:
            raise UsageError(f"results database {redact_url(self.url)} is at schema v{self.version}; lookup tables "
                             "need v3")
        from mobexport.converters.manifest import git_commit

        row = {"runtime": table["runtime"], "runtime_version": table["runtime_version"],
               "threads": int(table["threads"]), "device": json.dumps(table.get("device", {})),
               "created": table.get("created", ""), "n_entries": len(table["entries"]),
               "entries": json.dumps(table["entries"]), "git_commit": git_commit()}

        def _tx() -> int:
            with self.engine.begin() as conn:
                return int(conn.execute(sch.lookup_tables.insert().values(**row)
                                        .returning(sch.lookup_tables.c.id)).scalar_one())

        return self._retry(_tx)

    def lookup_tables(self) -> list[dict[str, Any]]:
        import sqlalchemy as sa

        with self.engine.connect() as conn:
            rows = [dict(m) for m in conn.execute(sa.select(sch.lookup_tables).order_by(sch.lookup_tables.c.id))
                    .mappings()]
        for r in rows:
            r["device"], r["entries"] = json.loads(r["device"]), json.loads(r["entries"])
        return rows

    # -- reads ------------------------------------------------------------------------------------------
    def query(self, *, model: str | None = None, target: str | None = None, harness: str | None = None,
              limit: int | None = None, with_samples: bool = False, after: int | None = None) -> list[StoredResult]:
        """Records in insertion order; ``model`` is a shell-style pattern (``mobileone*``); ``after`` an id to
        continue after (paging)."""
        import sqlalchemy as sa

        r = sch.results
        stmt = sa.select(*self._result_columns()).order_by(r.c.id)
        if model:
            stmt = stmt.where(r.c.model.like(_glob_to_like(model), escape="\\"))
        if target:
            stmt = stmt.where(r.c.target == target)
        if harness:
            stmt = stmt.where(r.c.harness == harness)
        if after is not None:
            stmt = stmt.where(r.c.id > after)
        if limit:
            stmt = stmt.limit(limit)
        with self.engine.connect() as conn:
            rows = [dict(m) for m in conn.execute(stmt).mappings()]
            raw = self._samples_for(conn, [row["id"] for row in rows]) if with_samples else {}
        return [self._to_stored(row, raw.get(row["id"])) for row in rows]

    def get(self, result_id: int) -> StoredResult:
        import sqlalchemy as sa

        with self.engine.connect() as conn:
            row = conn.execute(sa.select(*self._result_columns()).where(sch.results.c.id == result_id)
                               ).mappings().first()
            if row is None:
                raise UsageError(f"no result with id {result_id} in {redact_url(self.url)}")
            raw = self._samples_for(conn, [result_id])
        return self._to_stored(dict(row), raw.get(result_id))

    def _result_columns(self) -> list:
        """The ``results`` columns this database has (a read-only v1 database lacks the thermal columns)."""
        return [c for c in sch.results.c if self.version >= 2 or not c.name.startswith("thermal_")]

    def samples(self, result_id: int) -> list[float]:
        return self.get(result_id).result.samples_ms

    def count(self) -> int:
        import sqlalchemy as sa

        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(sch.results)).scalar_one())

    @staticmethod
    def _samples_for(conn, ids: list[int]) -> dict[int, list[float]]:
        import sqlalchemy as sa

        out: dict[int, list[float]] = {}
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            stmt = sa.select(sch.samples.c.result_id, sch.samples.c.samples_ms).where(
                sch.samples.c.result_id.in_(chunk))
            out.update({rid: json.loads(s) for rid, s in conn.execute(stmt)})
        return out

    @staticmethod
    def _to_stored(row: dict[str, Any], raw: list[float] | None) -> StoredResult:
        rid = row.pop("id")
        for k in _JSON_COLUMNS:
            row[k] = json.loads(row[k])
        row["samples_ms"] = raw if raw is not None else []
        return StoredResult(rid, BenchmarkResult(**row))


def create_database(server_url: str, prefix: str = "mobexport_") -> str:
    """Create a new, empty PostgreSQL database on the server that ``server_url`` points at and return its URL
    (benchmark scripts and tests, so that runs never see each other's rows)."""
    import uuid

    import sqlalchemy as sa

    name = prefix + uuid.uuid4().hex[:12]
    eng = sa.create_engine(normalize_url(server_url), isolation_level="AUTOCOMMIT")
    try:
        with eng.connect() as c:
            c.exec_driver_sql(f"CREATE DATABASE {name}")
    finally:
        eng.dispose()
    return normalize_url(server_url).rsplit("/", 1)[0] + "/" + name


def redact_url(url: str) -> str:
    """The URL without its password: ``user:***@`` up to the last ``@`` (a password may hold an unescaped one)
    and ``password=***`` in the query string."""
    import re

    url = re.sub(r"(://[^:/@]*):.*@", r"\1:***@", url)
    return re.sub(r"([?&]password=)[^&]*", r"\1***", url, flags=re.IGNORECASE)


def _glob_to_like(pattern: str) -> str:
    out = []
    for ch in pattern:
        out.append({"*": "%", "?": "_", "%": "\\%", "_": "\\_", "\\": "\\\\"}.get(ch, ch))
    return "".join(out)


def open_store(url: str | None = None, *, migrate_to: int | None = None, create: bool = True,
               read_only: bool = False) -> ResultStore:
    """The store at ``url``, migrated; ``create=False`` refuses a SQLite file that does not exist instead of
    creating an empty one; ``read_only=True`` (readers such as ``mobexport results``; implies ``create=False``)
    neither migrates nor writes, and reads a database whose file or folder cannot be written."""
    return ResultStore(url, migrate_to=migrate_to, create=create, read_only=read_only)
