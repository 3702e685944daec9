"""Accuracy records in the results store (table ``accuracy``, schema v4): one evaluation of one artifact on one
labelled dataset, linked to latency records by ``artifact_sha256``.

Small functions over an open ``ResultStore`` (its engine, retry and schema version), kept apart from the
latency code: ``add_accuracy(store, record) -> id``, ``accuracy_records(store, ...)``,
``latest_accuracy(store, shas)``.
"""

from __future__ import annotations

import json
from typing import Any

from mobexport.exporter.errors import UsageError

from . import schema as sch

__all__ = ["ACCURACY_FIELDS", "accuracy_records", "add_accuracy", "latest_accuracy"]

ACCURACY_FIELDS = tuple(c.name for c in sch.accuracy.c if c.name != "id")
_REQUIRED = ("artifact_sha256", "model", "target", "weights", "dataset_path", "dataset_fingerprint", "n_images",
             "status", "float_status", "tool_versions", "timestamp")


def _need_v4(store) -> None:
    if store.version < 4:
        raise UsageError(f"results database is at schema v{store.version}; accuracy records need v4")


def _row(record: dict[str, Any]) -> dict[str, Any]:
    missing = [k for k in _REQUIRED if record.get(k) in (None, "")]
    if missing:
        raise UsageError(f"accuracy record lacks {', '.join(missing)}")
    row = {k: record.get(k) for k in ACCURACY_FIELDS}
    row["tool_versions"] = json.dumps(row["tool_versions"], sort_keys=True)
    row["n_images"] = int(row["n_images"])
    return row


def add_accuracy(store, record: dict[str, Any]) -> int:
    """Insert one accuracy record (a dict with ``ACCURACY_FIELDS``; extra keys are ignored); returns its id."""
    _need_v4(store)
    row = _row(record)

    def _tx() -> int:
        with store.engine.begin() as conn:
            return int(conn.execute(sch.accuracy.insert().values(**row).returning(sch.accuracy.c.id)).scalar_one())

    return store._retry(_tx)


def accuracy_records(store, *, sha256: str | None = None, model: str | None = None, target: str | None = None,
                     limit: int | None = None) -> list[dict[str, Any]]:
    """Stored accuracy records in insertion order (``model`` is a shell-style pattern, as in ``store.query``)."""
    import sqlalchemy as sa

    from . import _glob_to_like

    if store.version < 4:
        return []
    t = sch.accuracy
    stmt = sa.select(t).order_by(t.c.id)
    if sha256:
        stmt = stmt.where(t.c.artifact_sha256 == sha256)
    if model:
        stmt = stmt.where(t.c.model.like(_glob_to_like(model), escape="\\"))
    if target:
        stmt = stmt.where(t.c.target == target)
    if limit:
        stmt = stmt.limit(limit)
    with store.engine.connect() as conn:
        rows = [dict(m) for m in conn.execute(stmt).mappings()]
    for r in rows:
        r["tool_versions"] = json.loads(r["tool_versions"])
    return rows


def latest_accuracy(store, shas: list[str]) -> dict[str, dict[str, Any]]:
    """{artifact sha256: its latest evaluated (status OK) accuracy record} for the given hashes."""
    if store.version < 4 or not shas:
        return {}
    t = sch.accuracy
    out: dict[str, dict[str, Any]] = {}
    with store.engine.connect() as conn:
        for m in sch.rows_by_sha256(conn, t, shas, t.c.status == "OK", order_by=t.c.id):
            out[m["artifact_sha256"]] = dict(m)  # later ids overwrite earlier ones
    for r in out.values():
        r["tool_versions"] = json.loads(r["tool_versions"])
    return out
