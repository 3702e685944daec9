"""Checks of the companion apps that need no Apple or Android toolchain.

* every .swift / .kt / .kts file parses with tree-sitter without ERROR or MISSING nodes (hidden ones included);
* contract: the JSON keys the apps encode (Swift CodingKeys of BenchmarkResult, the keys Kotlin's toJsonObject()
  writes) equal
  the properties of benchmarks/schema/result.schema.json, and required keys are non-optional in both;
* the shared example payloads validate against the schema and carry exactly the apps' key sets;
* the apps' unit tests read those examples in place (Gradle test resources, Xcode folder reference, SwiftPM path).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

try:
    from tests import app_sources as apps
except ImportError:  # tests/ is not a package: pytest puts tests/ itself on sys.path (prepend import mode)
    import app_sources as apps

pytest.importorskip("tree_sitter", reason="tree-sitter is a dev dependency: pip install 'mobexport[dev]'")
pytest.importorskip("tree_sitter_swift", reason="tree-sitter-swift is a dev dependency")
pytest.importorskip("tree_sitter_kotlin", reason="tree-sitter-kotlin is a dev dependency")

SWIFT_RESULT = apps.IOS_DIR / "BenchmarkKit" / "Sources" / "BenchmarkKit" / "BenchmarkResult.swift"
KOTLIN_RESULT = (apps.ANDROID_DIR / "benchkit" / "src" / "main" / "kotlin" / "dev" / "mobexport" / "benchkit"
                 / "BenchmarkResult.kt")
SWIFT_FIXTURES = apps.IOS_DIR / "BenchmarkKit" / "Tests" / "BenchmarkKitTests" / "Fixtures.swift"
EXAMPLES = {"ios_app": "ios_result.json", "android_app": "android_result.json"}

SWIFT_FILES = apps.source_files(apps.IOS_DIR, apps.SWIFT_EXTS)
KOTLIN_FILES = apps.source_files(apps.ANDROID_DIR, apps.KOTLIN_EXTS)


def _rel(p: Path) -> str:
    return str(p.relative_to(apps.ROOT))


@pytest.fixture(scope="module")
def schema() -> dict:
    return json.loads(apps.SCHEMA_PATH.read_text())


@pytest.fixture(scope="module")
def app_keys() -> dict[str, set[str]]:
    return {
        "ios_app": set(apps.swift_encoded_fields(SWIFT_RESULT.read_bytes())),
        "android_app": set(apps.kotlin_encoded_fields(KOTLIN_RESULT.read_bytes())),
    }


def _example(harness: str) -> dict:
    path = apps.EXAMPLES_DIR / EXAMPLES[harness]
    if not path.is_file():
        pytest.skip(f"{_rel(path)} is not there yet (written by the host/server engineer)")
    return json.loads(path.read_text())


# ------------------------------------------------------------------------------------------------ syntax


def test_both_apps_have_sources():
    assert len(SWIFT_FILES) >= 20, [_rel(p) for p in SWIFT_FILES]
    assert len(KOTLIN_FILES) >= 15, [_rel(p) for p in KOTLIN_FILES]
    assert SWIFT_RESULT in SWIFT_FILES and KOTLIN_RESULT in KOTLIN_FILES


@pytest.mark.parametrize("path", SWIFT_FILES + KOTLIN_FILES, ids=_rel)
def test_source_parses_without_errors(path: Path):
    problems = apps.check_file(path)
    assert not problems, "\n".join(map(str, problems))


@pytest.mark.parametrize(
    ("suffix", "src", "expected"),
    [
        (".swift", b"func f( {\n    let x = 1\n", "MISSING )"),
        (".swift", b"struct S {\n    var x: Int = \n}\n", "ERROR"),
        (".kt", b"fun f( {\n}\n", "ERROR"),
        # valid Kotlin, but the grammar flags one-line class bodies with a hidden MISSING node:
        # the strict check reports it, so the apps keep one member per line
        (".kt", b"object B { const val SIZE = 224 }\n", "MISSING _class_member_semi (hidden)"),
    ],
)
def test_syntax_check_reports_errors_with_location(suffix, src, expected):
    problems = apps.syntax_problems(src, apps.language("x" + suffix), "snippet" + suffix)
    assert any(p.kind.startswith(expected) for p in problems), problems
    assert all(str(p).startswith(f"snippet{suffix}:") and p.line >= 1 and p.col >= 1 for p in problems)


def test_syntax_check_accepts_clean_code():
    assert apps.syntax_problems(b"let x = [1, 2]\nprint(x)\n", apps.language("a.swift")) == []
    assert apps.syntax_problems(b"object B {\n    const val SIZE = 224\n}\n", apps.language("a.kt")) == []


# ------------------------------------------------------------------------------------------------ contract


@pytest.mark.parametrize("harness", ["ios_app", "android_app"])
def test_encoded_keys_equal_schema_properties(harness, schema):
    src = SWIFT_RESULT if harness == "ios_app" else KOTLIN_RESULT
    extract = apps.swift_encoded_fields if harness == "ios_app" else apps.kotlin_encoded_fields
    fields = extract(src.read_bytes())
    assert set(fields) == set(schema["properties"])
    assert apps.compare_with_schema(fields, schema) == []


def test_optional_properties_are_the_nullable_schema_ones(schema):
    """Optional in the apps ⇔ not required and nullable in the schema (tool_versions is an object, never null)."""
    nullable = {k for k, v in schema["properties"].items()
                if k not in schema["required"] and "null" in (v["type"] if isinstance(v["type"], list) else [v["type"]])}
    for fields in (apps.swift_encoded_fields(SWIFT_RESULT.read_bytes()),
                   apps.kotlin_encoded_fields(KOTLIN_RESULT.read_bytes())):
        assert {k for k, f in fields.items() if f.optional} == nullable


def test_renamed_swift_key_is_detected(schema):
    src = SWIFT_RESULT.read_text()
    assert src.count('"p90_ms"') == 1
    renamed = apps.swift_encoded_fields(src.replace('"p90_ms"', '"p90"').encode())
    assert "p90" in renamed and "p90_ms" not in renamed
    problems = apps.compare_with_schema(renamed, schema)
    assert "missing schema key 'p90_ms'" in problems and "key 'p90' is not in the schema" in problems


def test_swift_key_dropped_from_encode_is_detected():
    src = SWIFT_RESULT.read_text()
    line = "        try c.encode(notes, forKey: .notes)\n"
    assert line in src
    with pytest.raises(apps.AppSourceError, match="notes"):
        apps.swift_encoded_fields(src.replace(line, "").encode())


def test_swift_required_key_made_optional_is_detected(schema):
    src = SWIFT_RESULT.read_text().replace("public var minMs: Double\n", "public var minMs: Double?\n")
    problems = apps.compare_with_schema(apps.swift_encoded_fields(src.encode()), schema)
    assert problems == ["required key 'min_ms' is optional (minMs)"]


def test_renamed_kotlin_key_and_unwritten_property_are_detected(schema):
    src = KOTLIN_RESULT.read_text()
    assert src.count('.field("compute_unit", computeUnit)') == 1 and src.count('.field("chip", chip)\n') == 1
    renamed = apps.kotlin_encoded_fields(src.replace('.field("compute_unit"', '.field("unit"').encode())
    assert "missing schema key 'compute_unit'" in apps.compare_with_schema(renamed, schema)
    with pytest.raises(apps.AppSourceError, match=r"never written by toJsonObject: \['chip'\]"):
        apps.kotlin_encoded_fields(src.replace('        .field("chip", chip)\n', "").encode())
    with pytest.raises(apps.AppSourceError, match="written twice"):
        apps.kotlin_encoded_fields(src.replace('.field("chip", chip)', '.field("os", chip)').encode())
    nullable = src.replace("val runs: Int,", "val runs: Int?,")
    assert apps.compare_with_schema(apps.kotlin_encoded_fields(nullable.encode()), schema) == [
        "required key 'runs' is optional (runs)"]


def test_schema_version_and_harness_constants(schema):
    version = schema["properties"]["schema_version"]["const"]
    harnesses = schema["properties"]["harness"]["enum"]
    swift, kotlin = SWIFT_RESULT.read_text(), KOTLIN_RESULT.read_text()
    assert re.search(rf'static let schemaVersion = "{re.escape(version)}"', swift)
    assert re.search(rf'const val SCHEMA_VERSION = "{re.escape(version)}"', kotlin)
    assert re.search(r'static let harnessName = "ios_app"', swift) and "ios_app" in harnesses
    assert re.search(r'const val HARNESS_NAME = "android_app"', kotlin) and "android_app" in harnesses


# ------------------------------------------------------------------------------------------------ examples


@pytest.mark.parametrize("harness", ["ios_app", "android_app"])
def test_example_validates_against_schema(harness, schema):
    jsonschema = pytest.importorskip("jsonschema")
    example = _example(harness)
    validator = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(example)]
    assert not errors, errors
    assert example["harness"] == harness


@pytest.mark.parametrize("harness", ["ios_app", "android_app"])
def test_example_keys_equal_app_keys(harness, app_keys):
    example = _example(harness)
    assert set(example) == app_keys[harness], (
        f"only in the example: {sorted(set(example) - app_keys[harness])}; "
        f"only in the app: {sorted(app_keys[harness] - set(example))}")


# ------------------------------------------------------------------------------------------------ fixtures


def test_gradle_test_resources_point_at_examples():
    build = (apps.ANDROID_DIR / "benchkit" / "build.gradle.kts").read_text()
    assert not apps.syntax_problems(build.encode(), apps.language("build.gradle.kts"))
    dirs = re.findall(r'resources\.srcDir\(\s*rootProject\.file\(\s*"([^"]+)"\s*\)\s*\)', build)
    assert dirs, "benchkit/build.gradle.kts adds no test resources directory"
    # rootProject is android_app/ (settings.gradle.kts lives there)
    assert (apps.ANDROID_DIR / "settings.gradle.kts").is_file()
    assert [(apps.ANDROID_DIR / d).resolve() for d in dirs] == [apps.EXAMPLES_DIR.resolve()]
    test_src = (apps.ANDROID_DIR / "benchkit" / "src" / "test" / "kotlin" / "dev" / "mobexport" / "benchkit"
                / "ResultEncodingTest.kt").read_text()
    assert 'fixture("android_result.json")' in test_src


def test_xcode_test_bundle_references_examples():
    yml = (apps.IOS_DIR / "project.yml").read_text()
    refs = re.findall(r"-\s*path:\s*(\S+)\s*\n\s*type:\s*folder", yml)
    assert [(apps.IOS_DIR / r).resolve() for r in refs] == [apps.EXAMPLES_DIR.resolve()]
    test_src = (SWIFT_FIXTURES.parent / "ResultEncodingTests.swift").read_text()
    assert 'Fixtures.data("ios_result")' in test_src


def test_swiftpm_fixture_path_resolves_to_examples():
    """Fixtures.swift walks up from #filePath: count the steps and resolve them here."""
    src = SWIFT_FIXTURES.read_text()
    expr = re.search(r"URL\(fileURLWithPath: #filePath\)(.*?)\n\n", src, re.S).group(1)
    ups = expr.count(".deletingLastPathComponent()")
    appended = re.search(r'appendingPathComponent\("([^"]+)", isDirectory: true\)', expr).group(1)
    base = SWIFT_FIXTURES
    for _ in range(ups):
        base = base.parent
    assert (base / appended).resolve() == apps.EXAMPLES_DIR.resolve()


def test_android_uses_litert_with_gpu_delegate():
    build = (apps.ANDROID_DIR / "app" / "build.gradle.kts").read_text()
    assert re.search(r'val litertVersion = "\d+\.\d+\.\d+"', build)
    for artifact in ("litert", "litert-gpu"):
        assert f'"com.google.ai.edge.litert:{artifact}:$litertVersion"' in build
    wrapper = (apps.ANDROID_DIR / "gradle" / "wrapper" / "gradle-wrapper.properties").read_text()
    assert re.search(r"distributionUrl=.*gradle-\d+\.\d+(\.\d+)?-bin\.zip", wrapper)
    manifest = (apps.ANDROID_DIR / "app" / "src" / "androidTest" / "assets" / "tiny_conv.manifest.json")
    model = manifest.with_name("tiny_conv.tflite")
    import hashlib

    assert json.loads(manifest.read_text())["sha256"] == hashlib.sha256(model.read_bytes()).hexdigest()


# ------------------------------------------------------------------------------------------------ one protocol

KIT_KT = apps.ANDROID_DIR / "benchkit" / "src" / "main" / "kotlin" / "dev" / "mobexport" / "benchkit"
KIT_SWIFT = apps.IOS_DIR / "BenchmarkKit" / "Sources" / "BenchmarkKit"


def _kt_const(name: str, text: str) -> int:
    return int(re.search(rf"const val {name} = ([\d_]+)L?\n", text).group(1).replace("_", ""))


def _swift_static(name: str, text: str) -> float:
    return float(re.search(rf"static let {name}(?:: \w+)? = ([\d_.]+)\n", text).group(1).replace("_", ""))


def test_kits_share_the_hosts_protocol_numbers(schema):
    """Both kits: the host's default warm-up and runs, the schema's largest run count, a 600 s cool-down."""
    from mobexport.benchmarks.harness import BenchConfig

    kt = (KIT_KT / "BenchmarkRunner.kt").read_text()
    sw = (KIT_SWIFT / "BenchmarkRunner.swift").read_text()
    host = BenchConfig()
    assert _kt_const("DEFAULT_WARMUP", kt) == _swift_static("defaultWarmup", sw) == host.warmup == 20
    assert _kt_const("DEFAULT_RUNS", kt) == _swift_static("defaultRuns", sw) == 1000
    largest = schema["properties"]["runs"]["maximum"]
    assert largest == schema["properties"]["samples_ms"]["maxItems"] == 100_000
    assert _kt_const("MAX_RUNS", kt) == _swift_static("maxRuns", sw) == largest
    assert _kt_const("MAX_COOLDOWN_MILLIS", kt) == 1000 * _swift_static("maxCooldownSeconds", sw) == 600_000


def test_the_server_takes_a_record_of_the_largest_run_count(schema):
    """A record with the schema's largest run count, every sample at full double precision, fits the server's body
    limit (the apps' uploads were refused at 1 MiB)."""
    from mobexport.benchmarks.results import BenchmarkResult
    from mobexport.benchmarks.server import MAX_BODY

    example = json.loads((apps.EXAMPLES_DIR / "android_result.json").read_text())
    n = schema["properties"]["runs"]["maximum"]
    samples = [1.0 + i * 1.2345678901234e-7 + 1 / 3 for i in range(n)]
    fields = {k: v for k, v in example.items() if k not in
              ("min_ms", "p50_ms", "p90_ms", "mean_ms", "std_ms", "max_ms", "samples_ms", "runs")}
    record = BenchmarkResult.from_samples(samples, runs=n, **fields).to_dict()
    body = json.dumps(record).encode()
    assert len(body) > 1 << 20  # the old limit refused it
    assert len(body) < MAX_BODY


def _headless_keys_kt() -> list[str]:
    text = (KIT_KT / "HeadlessJob.kt").read_text()
    return re.findall(r'"(\w+)"', re.search(r"val KEYS = listOf\(([^)]*)\)", text).group(1))


def _headless_keys_swift() -> list[str]:
    text = (KIT_SWIFT / "HeadlessJob.swift").read_text()
    return re.findall(r'"(\w+)"', re.search(r"static let keys = \[([^\]]*)\]", text).group(1))


def test_headless_arguments_are_the_same_on_both_apps_and_documented():
    keys = _headless_keys_kt()
    assert keys == _headless_keys_swift()
    assert {"server", "token", "artifacts", "runs", "threads", "delegate"} <= set(keys)
    docs = (apps.ROOT / "docs" / "apps.md").read_text()
    adb = re.search(r"adb shell am start [^\n]*-n dev\.mobexport\.bench/\.MainActivity[^\n]*(?:\n[^\n`]+)*", docs)
    assert adb, "docs/apps.md has no adb shell am start line"
    assert {"server", "token", "artifacts", "runs", "threads", "delegate"} <= set(re.findall(r"--e[si] (\w+)", adb.group(0)))
    assert "xcodebuild test" in docs and "TEST_RUNNER_MOBEXPORT_SERVER" in docs
    for key in keys:
        assert f"`{key}`" in docs, f"docs/apps.md does not describe the headless key {key}"


def test_pending_uploads_refuse_the_same_statuses_on_both_apps():
    kt = (KIT_KT / "PendingUploads.kt").read_text()
    sw = (KIT_SWIFT / "PendingUploads.swift").read_text()
    kt_codes = {int(c) for c in re.search(r"PERMANENT = setOf\(([^)]*)\)", kt).group(1).split(",")}
    sw_codes = {int(c) for c in re.search(r"permanentStatuses: Set<Int> = \[([^\]]*)\]", sw).group(1).split(",")}
    assert kt_codes == sw_codes == {400, 413, 415, 422}
    # what the server answers for a body it will never take (tests/test_server.py checks it does)
    assert {401, 408, 503} & kt_codes == set()


def test_timed_region_and_round_trip_note_are_the_same_on_both_apps():
    kt = (KIT_KT / "BenchmarkResult.kt").read_text()
    sw = (KIT_SWIFT / "ResultBuilder.swift").read_text()
    note = "timed region: invoke; round trip (write input + invoke + read output) "
    assert note in kt and note.rstrip() in sw.replace('" +\n            "', "")
    for runner in ((KIT_KT / "BenchmarkRunner.kt").read_text(), (KIT_SWIFT / "BenchmarkRunner.swift").read_text()):
        loop = runner[re.search(r"for \(?(i|index) in 0(?: until |\.\.<)config\.runs", runner).start():]
        loop = loop[:loop.index("progress(")]
        order = [m.group(0) for m in re.finditer(r"writeInput|invoke\(\)|readOutput|nanoTime\(\)|nowNanoseconds\(\)", loop)]
        clock = "nanoTime()" if "nanoTime()" in order else "nowNanoseconds()"
        assert order == [clock, "writeInput", clock, "invoke()", clock, "readOutput", clock], order
