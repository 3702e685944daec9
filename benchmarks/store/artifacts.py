"""Exported artifacts in the results store (table ``artifacts``, schema v5): what the export of one artifact said —
size, weights, validation status and fidelity — by ``artifact_sha256``, the key every latency record (host or
phone) carries, so ``mobexport results`` shows them beside each latency row.

Written by the host harness when it stores a result of an artifact (``mobexport bench``, ``export --bench``),
from the artifact's manifest. The same sha256 is the same file: a later write replaces the row.
``add_artifact(store, manifest) -> sha256``, ``artifact_info(store, shas) -> {sha256: row}``.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

from . import schema as sch

__all__ = ["add_artifact", "artifact_info"]


def _row(manifest: dict[str, Any]) -> dict[str, Any]:
    from mobexport.benchmarks.results import fidelity_summary

    fid = manifest.get("fidelity") or {}
    target = str(manifest.get("target") or "?")
    size = manifest.get("size_bytes")
    return {"artifact_sha256": str(manifest["sha256"]), "model": str(manifest.get("model") or "?")[:128],
            "target": target[:32], "weights": str(manifest.get("weights") or "unknown")[:256],
            "size_bytes": int(size) if isinstance(size, int) and size >= 0 else None,
            "status": str(manifest.get("status") or fid.get("status") or "UNVALIDATED_NO_RUNTIME")[:32],
            "fidelity": fidelity_summary(target, fid)[:128],
            "metrics": json.dumps(fid.get("metrics") or {}, sort_keys=True, default=str),
            "timestamp": datetime.now(timezone.utc).isoformat(timespec="milliseconds")}


def add_artifact(store, manifest: dict[str, Any]) -> str | None:
    """Record (or replace) the artifact a manifest describes; returns its sha256, or None when the manifest has
    none or the database predates v5 (a read-only older database is never migrated)."""
    if store.version < 5 or not manifest.get("sha256"):
        return None
    row = _row(manifest)
    t = sch.artifacts

    def _tx() -> None:
        with store.engine.begin() as conn:
            conn.execute(t.delete().where(t.c.artifact_sha256 == row["artifact_sha256"]))
            conn.execute(t.insert().values(**row))

    store._retry(_tx)
    return row["artifact_sha256"]


def artifact_info(store, shas: list[str]) -> dict[str, dict[str, Any]]:
    """{artifact sha256: its artifacts row (metrics parsed)} for those of ``shas`` that are recorded."""
    if store.version < 5 or not shas:
        return {}
    with store.engine.connect() as conn:
        return {m["artifact_sha256"]: {**m, "metrics": json.loads(m["metrics"])}
                for m in sch.rows_by_sha256(conn, sch.artifacts, shas)}
