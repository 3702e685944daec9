"""The results store: SQLite by default (``./mobexport-results.db``), PostgreSQL by URL.

``open_store(url)`` migrates the database to the current schema and returns a ``ResultStore``:
``add(result) -> id``, ``query(...)``, ``get(id)``, ``samples(id)``, ``count()``. A record and its raw samples
are written in one transaction (nothing half-written). SQLite runs in WAL mode with a busy timeout, every
write transaction starts with ``BEGIN IMMEDIATE`` and is retried while the database is locked, so concurrent
writer processes lose no row.
"""

from __future__ import annotations

import json
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


def _sqlite_engine(url: str):
    import sqlalchemy as sa

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


def _check_sqlite_file(db: Path, *, create: bool) -> None:
    """Refuse, before anything opens it for writing (WAL mode rewrites the header), a path that is not a
    mobexport SQLite database: a folder, another kind of file, a damaged database, or another program's
    database (tables but no ``mobexport_schema``). A missing file is created only when ``create``."""
    import sqlite3
    from urllib.parse import quote

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
        probe = sqlite3.connect(f"file:{quote(str(db.resolve()))}?mode=ro", uri=True, timeout=60)
        try:
            tables = {r[0] for r in probe.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        finally:
            probe.close()
    except sqlite3.Error as e:
        raise UsageError(f"results database {db} cannot be read: {e}") from e
    if tables and sch.VERSION_TABLE not in tables:
        raise UsageError(f"results database {db} belongs to another program (tables: "
                         f"{', '.join(sorted(tables)[:5])}); mobexport leaves it alone",
                         hint="pass --db with a mobexport results database or a new file name")


def _make_engine(url: str, *, create: bool = True):
    import sqlalchemy as sa

    if url.startswith("sqlite"):
        db = url.split(":///", 1)[-1]
        if db and db != ":memory:":
            _check_sqlite_file(Path(db), create=create)
        return _sqlite_engine(url)
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
        return {"id": self.id, **self.result.to_dict(samples=samples)}


class ResultStore:
    def __init__(self, url: str | None = None, *, migrate_to: int | None = None, create: bool = True):
        self.url = normalize_url(url)
        self.engine = _make_engine(self.url, create=create)
        import sqlalchemy.exc as sa_exc

        try:
            self.version = self._retry(lambda: self._migrate(migrate_to or sch.LATEST))
        except sa_exc.DatabaseError as e:  # OperationalError, and 'file is not a database' / malformed image
            self.engine.dispose()
            raise UsageError(f"cannot open results database {redact_url(self.url)}: {str(e.orig or e)[:300]}") from e

    # -- plumbing ---------------------------------------------------------------------------------------
    def _migrate(self, to_version: int) -> int:
        with self.engine.begin() as conn:
            return sch.migrate(conn, to_version)

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
        validate_payload(result.to_dict())
        row = result.to_dict(samples=False)
        if self.version < 2:
            row.pop("thermal_state_before", None)
            row.pop("thermal_state_after", None)
        for k in _JSON_COLUMNS:
            row[k] = json.dumps(row[k])
        payload = json.dumps([float(x) for x in result.samples_ms])

        def _tx() -> int:
            with self.engine.begin() as conn:
                rid = conn.execute(sch.results.insert().values(**row).returning(sch.results.c.id)).scalar_one()
                conn.execute(sch.samples.insert().values(result_id=rid, n=len(result.samples_ms),
                                                         samples_ms=payload))
                return int(rid)

        return self._retry(_tx)

    def add_lookup_table(self, table: dict[str, Any]) -> int:
        """Store a per-block latency lookup table (``LatencyTable.to_dict()``) with its provenance."""
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
        cols = [c for c in r.c if self.version >= 2 or not c.name.startswith("thermal_")]
        stmt = sa.select(*cols).order_by(r.c.id)
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
            row = conn.execute(sa.select(sch.results).where(sch.results.c.id == result_id)).mappings().first()
            if row is None:
                raise UsageError(f"no result with id {result_id} in {redact_url(self.url)}")
            raw = self._samples_for(conn, [result_id])
        return self._to_stored(dict(row), raw.get(result_id))

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


def open_store(url: str | None = None, *, migrate_to: int | None = None, create: bool = True) -> ResultStore:
    """The store at ``url``, migrated; ``create=False`` (readers such as ``mobexport results``) refuses a SQLite
    file that does not exist instead of creating an empty one."""
    return ResultStore(url, migrate_to=migrate_to, create=create)
