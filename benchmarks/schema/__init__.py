"""The JSON schemas shared with the apps: ``result.schema.json`` (one benchmark run, see
``mobexport.benchmarks.results``) and ``manifest.schema.json`` (manifest.json beside every artifact, as
``mobexport.converters.manifest`` writes it and ``mobexport serve`` hands it out)."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

SCHEMA_DIR = Path(__file__).resolve().parent
MANIFEST_SCHEMA_PATH = SCHEMA_DIR / "manifest.schema.json"

__all__ = ["MANIFEST_SCHEMA_PATH", "SCHEMA_DIR", "load_manifest_schema", "manifest_errors"]


@lru_cache(maxsize=1)
def load_manifest_schema() -> dict[str, Any]:
    return json.loads(MANIFEST_SCHEMA_PATH.read_text())


@lru_cache(maxsize=1)
def _manifest_validator():
    import jsonschema

    schema = load_manifest_schema()
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


def manifest_errors(manifest: Any) -> list[str]:
    """Every way ``manifest`` departs from manifest.schema.json, as ``path: message`` lines (empty = it follows)."""
    errors = sorted(_manifest_validator().iter_errors(manifest), key=lambda e: list(map(str, e.absolute_path)))
    return [f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in errors]
