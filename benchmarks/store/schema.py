"""Tables of the results database and its migrations (a small hand-rolled, ordered list).

The database records its version in ``mobexport_schema``; ``migrate`` applies the missing steps in one
transaction under a writer lock (SQLite ``BEGIN IMMEDIATE``, PostgreSQL advisory lock), so concurrent
processes opening a fresh database apply each step exactly once.

History:
  v1  results (one row per record, statistics as columns) + samples (raw samples, one JSON row per result)
  v2  results.thermal_state_before / thermal_state_after (the apps report the device's thermal state)
  v3  lookup_tables: per-block latency lookup tables (analysis LUT predictor) with their provenance
  v4  accuracy: top-1/top-5 of an artifact and its float model on a labelled dataset (store/accuracy.py)
  v5  artifacts: an exported artifact's size, weights and fidelity at export, by sha256 (store/artifacts.py)
  v6  sweep_cells: the state of each cell of a `mobexport sweep`, keyed by its inputs (store/cells.py)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import sqlalchemy as sa

VERSION_TABLE = "mobexport_schema"
PG_LOCK_KEY = 0x6D6F6265  # "mobe": advisory lock id for migrations


def rows_by_sha256(conn, table: sa.Table, shas: list[str], *where, order_by=None):
    """The rows of ``table`` whose ``artifact_sha256`` is one of ``shas`` (and ``where``), as mappings, asked
    500 hashes at a time (bound-parameter limits)."""
    uniq = sorted(set(shas))
    for start in range(0, len(uniq), 500):
        stmt = sa.select(table).where(table.c.artifact_sha256.in_(uniq[start:start + 500]), *where)
        if order_by is not None:
            stmt = stmt.order_by(order_by)
        yield from conn.execute(stmt).mappings()


def _v1_result_columns() -> list[sa.Column]:
    s, f, i = sa.String, sa.Float, sa.Integer
    return [
        sa.Column("id", i, primary_key=True, autoincrement=True),
        sa.Column("schema_version", s(16), nullable=False),
        sa.Column("model", s(128), nullable=False, index=True),
        sa.Column("weights", s(256), nullable=False),
        sa.Column("target", s(32), nullable=False, index=True),
        sa.Column("artifact_sha256", s(64), nullable=False),
        sa.Column("harness", s(16), nullable=False, index=True),
        sa.Column("device_model", s(128), nullable=False),
        sa.Column("os", s(64), nullable=False),
        sa.Column("os_version", s(64), nullable=False),
        sa.Column("chip", s(128), nullable=False),
        sa.Column("runtime", s(64), nullable=False),
        sa.Column("runtime_version", s(64), nullable=False),
        sa.Column("compute_unit", s(64), nullable=False),
        sa.Column("threads", i, nullable=True),
        sa.Column("input_shape", sa.Text, nullable=False),  # JSON list
        sa.Column("batch_size", i, nullable=False),
        sa.Column("warmup", i, nullable=False),
        sa.Column("runs", i, nullable=False),
        *[sa.Column(n, f, nullable=False) for n in ("min_ms", "p50_ms", "p90_ms", "mean_ms", "std_ms", "max_ms")],
        sa.Column("load_ms", f, nullable=True),
        sa.Column("peak_rss_mb", f, nullable=True),
        sa.Column("validation_status", s(32), nullable=False),
        sa.Column("tool_versions", sa.Text, nullable=False),  # JSON object
        sa.Column("git_commit", s(64), nullable=True),
        sa.Column("timestamp", s(64), nullable=False),
        sa.Column("notes", sa.Text, nullable=True),
    ]


def _v2_result_columns() -> list[sa.Column]:
    return [sa.Column("thermal_state_before", sa.String(32), nullable=True),
            sa.Column("thermal_state_after", sa.String(32), nullable=True)]


def _samples_columns() -> list[sa.Column]:
    return [
        sa.Column("result_id", sa.Integer, sa.ForeignKey("results.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("n", sa.Integer, nullable=False),
        sa.Column("samples_ms", sa.Text, nullable=False),  # JSON list of floats, in run order
    ]


def _lut_columns() -> list[sa.Column]:
    s = sa.String
    return [
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("runtime", s(64), nullable=False),
        sa.Column("runtime_version", s(64), nullable=False),
        sa.Column("threads", sa.Integer, nullable=False),
        sa.Column("device", sa.Text, nullable=False),  # JSON object
        sa.Column("created", s(64), nullable=False),
        sa.Column("n_entries", sa.Integer, nullable=False),
        sa.Column("entries", sa.Text, nullable=False),  # JSON list of entries
        sa.Column("git_commit", s(64), nullable=True),
    ]


def _accuracy_columns() -> list[sa.Column]:
    """v4: one evaluation of one artifact on one labelled dataset (rows written by ``store/accuracy.py``)."""
    s, f, i = sa.String, sa.Float, sa.Integer
    metrics = [f"{who}_{m}{b}" for who in ("artifact", "float") for m in ("top1", "top5") for b in ("", "_lo", "_hi")]
    return [
        sa.Column("id", i, primary_key=True, autoincrement=True),
        sa.Column("artifact_sha256", s(64), nullable=False, index=True),
        sa.Column("model", s(128), nullable=False, index=True),
        sa.Column("target", s(32), nullable=False),
        sa.Column("weights", s(256), nullable=False),
        sa.Column("dataset_path", sa.Text, nullable=False),
        sa.Column("dataset_fingerprint", s(64), nullable=False),
        sa.Column("n_images", i, nullable=False),
        *[sa.Column(n, f, nullable=True) for n in metrics],
        sa.Column("agreement", f, nullable=True),
        sa.Column("status", s(32), nullable=False),
        sa.Column("float_status", s(32), nullable=False),
        sa.Column("notes", sa.Text, nullable=True),
        sa.Column("tool_versions", sa.Text, nullable=False),  # JSON object
        sa.Column("git_commit", s(64), nullable=True),
        sa.Column("timestamp", s(64), nullable=False),
    ]


def _artifact_columns() -> list[sa.Column]:
    """v5: what the export of one artifact (by sha256) said: size, weights, validation status and fidelity."""
    s = sa.String
    return [
        sa.Column("artifact_sha256", s(64), primary_key=True),
        sa.Column("model", s(128), nullable=False),
        sa.Column("target", s(32), nullable=False),
        sa.Column("weights", s(256), nullable=False),
        sa.Column("size_bytes", sa.BigInteger, nullable=True),
        sa.Column("status", s(32), nullable=False),  # the export's validation status
        sa.Column("fidelity", s(128), nullable=False),  # one-line summary: "rel 1.2e-07", "agree 0.990, 31.2 dB"
        sa.Column("metrics", sa.Text, nullable=False),  # JSON object: the manifest's fidelity metrics
        sa.Column("timestamp", s(64), nullable=False),
    ]


def _sweep_cell_columns() -> list[sa.Column]:
    """v6: one cell of a sweep, keyed by the sha256 of its inputs (model, weights sha256, target, options, tool
    versions); its state, attempts, the node and pid of the worker on it, and its outcome (store/cells.py)."""
    s, i = sa.String, sa.Integer
    return [
        sa.Column("key", s(64), primary_key=True),
        sa.Column("sweep", s(36), nullable=False, index=True),
        sa.Column("model", s(256), nullable=False),
        sa.Column("target", s(32), nullable=False),
        sa.Column("weights", s(256), nullable=False),
        sa.Column("weights_sha256", s(64), nullable=False),
        sa.Column("options", sa.Text, nullable=False),  # JSON object
        sa.Column("tool_versions", sa.Text, nullable=False),  # JSON object
        sa.Column("bench", i, nullable=False),
        sa.Column("phase", s(16), nullable=False),  # export | bench
        sa.Column("state", s(16), nullable=False),  # pending | running | done | failed
        sa.Column("attempts", i, nullable=False),
        sa.Column("node", s(64), nullable=True),
        sa.Column("pid", i, nullable=True),
        sa.Column("status", s(32), nullable=True),
        sa.Column("reason", sa.Text, nullable=True),
        sa.Column("record", sa.Text, nullable=True),  # JSON object: the matrix row, artifact, bench figures
        sa.Column("result_id", i, nullable=True),
        sa.Column("started", s(64), nullable=True),
        sa.Column("finished", s(64), nullable=True),
    ]


# The current shape, used for queries and inserts.
metadata = sa.MetaData()
results = sa.Table("results", metadata, *_v1_result_columns(), *_v2_result_columns())
samples = sa.Table("samples", metadata, *_samples_columns())
lookup_tables = sa.Table("lookup_tables", metadata, *_lut_columns())
accuracy = sa.Table("accuracy", metadata, *_accuracy_columns())
artifacts = sa.Table("artifacts", metadata, *_artifact_columns())
sweep_cells = sa.Table("sweep_cells", metadata, *_sweep_cell_columns())
version_table = sa.Table(VERSION_TABLE, metadata, sa.Column("id", sa.Integer, primary_key=True),
                         sa.Column("version", sa.Integer, nullable=False))


def _m1_initial(conn: sa.Connection) -> None:
    md = sa.MetaData()
    sa.Table("results", md, *_v1_result_columns())
    sa.Table("samples", md, *_samples_columns())
    md.create_all(conn)


def _m2_thermal_state(conn: sa.Connection) -> None:
    for col in _v2_result_columns():
        conn.exec_driver_sql(f"ALTER TABLE results ADD COLUMN {col.name} VARCHAR({col.type.length})")


def _m3_lookup_tables(conn: sa.Connection) -> None:
    md = sa.MetaData()
    sa.Table("lookup_tables", md, *_lut_columns())
    md.create_all(conn)


def _m4_accuracy(conn: sa.Connection) -> None:
    md = sa.MetaData()
    sa.Table("accuracy", md, *_accuracy_columns())
    md.create_all(conn)


def _m5_artifacts(conn: sa.Connection) -> None:
    md = sa.MetaData()
    sa.Table("artifacts", md, *_artifact_columns())
    md.create_all(conn)


def _m6_sweep_cells(conn: sa.Connection) -> None:
    md = sa.MetaData()
    sa.Table("sweep_cells", md, *_sweep_cell_columns())
    md.create_all(conn)


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    apply: Callable[[sa.Connection], None]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "results + raw samples", _m1_initial),
    Migration(2, "thermal state columns", _m2_thermal_state),
    Migration(3, "per-block latency lookup tables", _m3_lookup_tables),
    Migration(4, "accuracy on labelled datasets", _m4_accuracy),
    Migration(5, "exported artifacts: size, weights, fidelity", _m5_artifacts),
    Migration(6, "sweep cell states", _m6_sweep_cells),
)
LATEST = MIGRATIONS[-1].version
CELLS_VERSION = 6  # sweep_cells (store/cells.py)


def current_version(conn: sa.Connection) -> int:
    if not sa.inspect(conn).has_table(VERSION_TABLE):
        return 0
    v = conn.execute(sa.select(version_table.c.version).where(version_table.c.id == 1)).scalar()
    return int(v or 0)


def refuse_newer(version: int, name: str = "results database") -> None:
    """UsageError (exit 2) for a database written by a newer mobexport: its tables are not the ones this code
    knows, so it is neither read nor written."""
    if version > LATEST:
        from mobexport.exporter.errors import UsageError

        raise UsageError(f"{name} has schema v{version}, newer than this mobexport (v{LATEST}); it is left as it is",
                         hint="upgrade mobexport (pip install -U mobexport) to use it, or pass another --db")


def migrate(conn: sa.Connection, to_version: int = LATEST, *, name: str = "results database") -> int:
    """Bring the database to ``to_version`` inside the caller's (locked) transaction; returns the version. A
    newer database is refused before anything is written."""
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": PG_LOCK_KEY})
    v = current_version(conn)
    refuse_newer(v, name)
    if v == 0:
        version_table.create(conn, checkfirst=True)
        conn.execute(version_table.insert().values(id=1, version=0))
    for m in MIGRATIONS:
        if v < m.version <= to_version:
            m.apply(conn)
            conn.execute(version_table.update().where(version_table.c.id == 1).values(version=m.version))
            v = m.version
    return v
