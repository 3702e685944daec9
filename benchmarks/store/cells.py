"""Sweep cell states in the results store (table ``sweep_cells``): one row per cell of ``mobexport sweep`` — a
(model, weights, target, options) under given tool versions — keyed by the sha256 of those inputs, so a cell is
recorded exactly once whatever the number of attempts, and ``--resume`` finds the cells already done.

States: ``pending`` (planned), ``running`` (a worker claimed it: node, pid, attempt), ``done`` (finished; its
``status`` may still be a failed export, as in the matrix), ``failed`` (the worker died on every attempt; the
reason is kept). ``phase`` is ``export`` or ``bench``. A bench result is inserted in the same transaction that
marks its cell done, so a worker killed in between leaves neither.

Small functions over an open ``ResultStore`` (its engine and retry), as ``store/accuracy.py``.
"""

from __future__ import annotations

import json
import time
from typing import Any

from . import schema as sch

__all__ = ["cell_rows", "claim", "finish", "plan", "state_counts"]

PENDING, RUNNING, DONE, FAILED = "pending", "running", "done", "failed"


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _need_table(store) -> None:
    from mobexport.exporter.errors import UsageError

    if store.version < sch.CELLS_VERSION:
        raise UsageError(f"results database is at schema v{store.version}; sweep cells need "
                         f"v{sch.CELLS_VERSION}")


def plan(store, sweep: str, cell: dict[str, Any], *, resume: bool) -> bool:
    """Record ``cell`` (``key``, ``model``, ``target``, ``weights``, ``weights_sha256``, ``options``,
    ``tool_versions``, ``bench``) as pending in ``sweep``; False when ``resume`` and the cell is already done with
    the same inputs (same key; with ``bench``, its bench done too), which is then left as it is."""
    import sqlalchemy as sa

    _need_table(store)
    t = sch.sweep_cells
    row = {"key": cell["key"], "sweep": sweep, "model": cell["model"], "target": cell["target"],
           "weights": cell["weights"], "weights_sha256": cell["weights_sha256"],
           "options": json.dumps(cell["options"], sort_keys=True),
           "tool_versions": json.dumps(cell["tool_versions"], sort_keys=True), "bench": int(bool(cell["bench"])),
           "phase": "export", "state": PENDING, "attempts": 0, "node": None, "pid": None, "status": None,
           "reason": None, "record": None, "result_id": None, "started": None, "finished": None}

    def _tx() -> bool:
        with store.engine.begin() as conn:
            old = conn.execute(sa.select(t.c.state, t.c.phase, t.c.bench).where(t.c.key == cell["key"])
                               .with_for_update()).first()
            if old is None:
                conn.execute(t.insert().values(**row))
                return True
            if resume and old.state == DONE and (old.bench or not cell["bench"]):
                return False
            conn.execute(t.update().where(t.c.key == cell["key"]).values(**row))
            return True

    return store._retry(_tx)


def claim(store, key: str, sweep: str, phase: str, node: str, pid: int) -> dict[str, Any] | None:
    """A worker takes cell ``key`` for ``phase``: state running, attempt counted, node and pid written. None when
    this sweep already finished that phase of the cell (a retry after the result was committed), so nothing
    is done twice."""
    import sqlalchemy as sa

    t = sch.sweep_cells

    def _tx() -> dict[str, Any] | None:
        with store.engine.begin() as conn:
            row = conn.execute(sa.select(t).where(t.c.key == key).with_for_update()).mappings().first()
            if row is None or row["sweep"] != sweep:
                return None
            if row["phase"] == phase and row["state"] in (DONE, FAILED):
                return None
            attempts = row["attempts"] + 1 if row["phase"] == phase else 1
            conn.execute(t.update().where(t.c.key == key).values(
                phase=phase, state=RUNNING, attempts=attempts, node=node, pid=pid, started=_now(), finished=None))
            return {**dict(row), "attempts": attempts}

    return store._retry(_tx)


def finish(store, key: str, *, state: str, status: str, reason: str = "", record: dict[str, Any] | None = None,
           result=None, phase: str | None = None) -> int | None:
    """Close cell ``key``: ``state`` (done / failed), its Status value, reason and record; with ``result`` (a
    ``BenchmarkResult``) the result and its samples are inserted in the same transaction. Returns the result id."""
    import sqlalchemy as sa

    t = sch.sweep_cells

    def _tx() -> int | None:
        with store.engine.begin() as conn:
            rid = store.insert_result(conn, result) if result is not None else None
            old = conn.execute(sa.select(t.c.record).where(t.c.key == key)).scalar()
            merged = {**(json.loads(old) if old else {}), **(record or {})}
            values = {"state": state, "status": status, "reason": reason[:2000], "record": json.dumps(merged),
                      "finished": _now(), "pid": None}
            if rid is not None:
                values["result_id"] = rid
            if phase:
                values["phase"] = phase
            conn.execute(t.update().where(t.c.key == key).values(**values))
            return rid

    return store._retry(_tx)


def cell_rows(store, *, sweep: str | None = None, keys: list[str] | None = None) -> list[dict[str, Any]]:
    """Cell rows (JSON columns decoded), by model then target, of one sweep or of some keys or all."""
    import sqlalchemy as sa

    _need_table(store)
    t = sch.sweep_cells
    stmt = sa.select(t).order_by(t.c.model, t.c.target)
    if sweep:
        stmt = stmt.where(t.c.sweep == sweep)
    if keys is not None:
        stmt = stmt.where(t.c.key.in_(keys))
    with store.engine.connect() as conn:
        rows = [dict(m) for m in conn.execute(stmt).mappings()]
    for r in rows:
        for k in ("options", "tool_versions", "record"):
            r[k] = json.loads(r[k]) if r[k] else {}
    return rows


def state_counts(store, sweep: str) -> dict[str, int]:
    """{state: number of cells} of one sweep."""
    import sqlalchemy as sa

    t = sch.sweep_cells
    with store.engine.connect() as conn:
        return {s: int(n) for s, n in conn.execute(sa.select(t.c.state, sa.func.count()).where(t.c.sweep == sweep)
                                                   .group_by(t.c.state))}
