"""`Status` (exporter/status.py) is the one vocabulary of statuses (issue #15): the result and manifest schemas'
enums and both apps' enums equal it, the conversion matrix records its values only (a failed conversion is
CONVERT_FAILED), and no status string outside it is written by the scripts or the benchmark code."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from mobexport.exporter import errors
from mobexport.exporter.status import Status

try:
    from tests import app_sources as apps
except ImportError:  # tests/ is not a package: pytest puts tests/ itself on sys.path (prepend import mode)
    import app_sources as apps

ROOT = Path(__file__).resolve().parents[1]
VALUES = [s.value for s in Status]
SWIFT = apps.IOS_DIR / "BenchmarkKit" / "Sources" / "BenchmarkKit" / "ResultBuilder.swift"
KOTLIN = apps.ANDROID_DIR / "benchkit" / "src" / "main" / "kotlin" / "dev" / "mobexport" / "benchkit" / "BenchmarkResult.kt"
# "status": "X", status="X", *_status = "X", == "X" on a status: string statuses written in code
_STATUS_LITERAL = re.compile(
    r"""(?:["']\w*status["']\s*:\s*|\w*status(?:["']\])?\s*(?:==|!=|=)\s*)["']([A-Z][A-Z_]+)["']""")


def test_result_schema_enum_is_status():
    schema = json.loads((ROOT / "benchmarks" / "schema" / "result.schema.json").read_text())
    assert schema["properties"]["validation_status"]["enum"] == VALUES


def test_manifest_schema_enum_is_status():
    schema = json.loads((ROOT / "benchmarks" / "schema" / "manifest.schema.json").read_text())
    assert schema["$defs"]["status"]["enum"] == VALUES
    assert schema["properties"]["status"] == {"$ref": "#/$defs/status"}
    assert schema["properties"]["fidelity"]["properties"]["status"] == {"$ref": "#/$defs/status"}


def test_app_enums_are_status():
    assert apps.swift_enum_values(SWIFT.read_bytes(), "ValidationStatus") == VALUES
    assert apps.kotlin_enum_entries(KOTLIN.read_bytes(), "ValidationStatus") == VALUES


def test_enum_extractors_see_a_missing_case():
    src = SWIFT.read_bytes().replace(b'    case convertFailed = "CONVERT_FAILED"\n', b"")
    assert "CONVERT_FAILED" not in apps.swift_enum_values(src, "ValidationStatus")
    src = KOTLIN.read_bytes().replace(b"    SKIPPED,\n", b"")
    assert apps.kotlin_enum_entries(src, "ValidationStatus") == VALUES[:-1]


def _status_literals(text: str) -> set[str]:
    return set(_STATUS_LITERAL.findall(text))


def test_status_literal_scan_finds_strings_outside_the_enum():
    code = 'row = {"status": "UNAVAILABLE"}\nif c["status"] == "OK":\n    bench_status = "FAILED"\n'
    assert _status_literals(code) == {"UNAVAILABLE", "OK", "FAILED"}


@pytest.mark.parametrize("folder", ["scripts", "benchmarks", "mobexport", "exporter", "quantization", "converters"])
def test_no_status_outside_the_enum(folder):
    found = {f"{p.relative_to(ROOT)}: {v}" for p in sorted((ROOT / folder).rglob("*.py"))
             for v in _status_literals(p.read_text()) if v not in VALUES}
    assert not found


@pytest.mark.parametrize("err, status", [
    (errors.ConversionError("boom", step="convert"), Status.CONVERT_FAILED),
    (errors.UnsupportedOpError("Foo", "blocks.0", backend="litert"), Status.CONVERT_FAILED),
    (errors.UsageError("bad option"), Status.CONVERT_FAILED),
    (errors.InvariantError("BatchNorm left"), Status.CONVERT_FAILED),
    (errors.TargetUnavailableError("coremltools missing"), Status.SKIPPED),
    (errors.ValidationError("cosine 0.2"), Status.MISMATCH),
])
def test_status_of_a_failed_export(err, status):
    assert Status.of_error(err) is status


@pytest.mark.parametrize("err, status", [
    (errors.ConversionError("op Foo unsupported", step="convert", model="m", target="tflite-w8a8"), "CONVERT_FAILED"),
    (errors.TargetUnavailableError("coremltools is not installed"), "SKIPPED"),
])
def test_matrix_records_failed_cells_with_status_values(monkeypatch, tmp_path, err, status):
    """The sweep's matrix record of a cell (benchmarks/sweep.matrix_row): a failed export is a record whose status
    is a Status value (the matrix once wrote UNAVAILABLE and exception class names)."""
    import mobexport.converters.pipeline as pipeline
    from mobexport.benchmarks import sweep

    def fail(*args, **kwargs):
        raise err

    monkeypatch.setattr(pipeline, "export", fail)
    cell = {"model": "mobileone_s0", "target": "tflite-w8a8", "weights": "", "options": {"random_bn_seed": 0}}
    row = sweep.matrix_row(cell, out_dir=str(tmp_path))
    assert row["status"] == status and row["error"] == type(err).__name__
    assert row["mb"] is None and str(err).splitlines()[0][:100] == row["fidelity"]
