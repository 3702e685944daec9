"""Packaging guards: every Python package folder ships in the wheel under the one `mobexport` namespace."""

from __future__ import annotations

from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[1]
MAPPING = {"mobexport": "mobexport", "exporter": "mobexport.exporter", "converters": "mobexport.converters",
           "quantization": "mobexport.quantization", "benchmarks": "mobexport.benchmarks"}


def test_every_package_folder_is_listed_in_pyproject():
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(cfg["packages"])
    assert cfg["package-dir"] == {v: k for k, v in MAPPING.items()}
    found = set()
    for folder, dotted in MAPPING.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / folder).parts
            found.add(".".join((dotted, *rel)))
    assert found - listed == set(), f"package folders missing from pyproject: {sorted(found - listed)}"
    assert listed - found == set(), f"pyproject lists packages that do not exist: {sorted(listed - found)}"


def test_schema_ships_as_package_data():
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert "*.json" in cfg["package-data"]["mobexport.benchmarks.schema"]
    assert (ROOT / "benchmarks" / "schema" / "result.schema.json").is_file()
