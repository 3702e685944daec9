"""manifest.schema.json is the contract between the exporter, `mobexport serve` and the apps (issue #15).

* The schema describes what converters/manifest.py writes: a real export (dynamic batch, a non-square crop)
  follows it, and the conftest hook checks every manifest any test writes (a manifest off the schema is refused).
* The server reads from a manifest only keys the schema requires, as strings, and serves it unchanged.
* The apps' manifest decoders (Swift ArtifactManifest.swift, Kotlin ArtifactManifest.kt, read by tree-sitter)
  read only keys the schema defines, with kinds the schema allows; what Swift requires the schema requires; a
  dynamic dimension (null / "batch") in a shape is read as such and skips that one entry of the listing.
"""

from __future__ import annotations

import ast
import copy
import json
import re
from pathlib import Path

import pytest

from mobexport.benchmarks.schema import MANIFEST_SCHEMA_PATH, load_manifest_schema, manifest_errors

try:
    from tests import app_sources as apps
except ImportError:  # tests/ is not a package: pytest puts tests/ itself on sys.path (prepend import mode)
    import app_sources as apps

ROOT = Path(__file__).resolve().parents[1]
SWIFT = apps.IOS_DIR / "BenchmarkKit" / "Sources" / "BenchmarkKit" / "ArtifactManifest.swift"
KOTLIN = apps.ANDROID_DIR / "benchkit" / "src" / "main" / "kotlin" / "dev" / "mobexport" / "benchkit" / "ArtifactManifest.kt"
# what each decoder reads → the part of the schema it reads it from
SWIFT_SECTIONS = [("ArtifactManifest", "Keys", "manifest"), ("InputDescription", "CodingKeys", "tensor"),
                  ("PreprocessingDescription", "Keys", "preprocessing")]
KOTLIN_SECTIONS = [("fromJson", "manifest"), ("inputOf", "manifest"), ("tensorOf", "tensor"),
                   ("preprocessingOf", "preprocessing")]


# ------------------------------------------------------------------------------------------ schema helpers

def _resolve(node: dict, schema: dict) -> dict:
    while "$ref" in node:
        node = schema["$defs"][node["$ref"].rsplit("/", 1)[1]]
    return node


def _section(name: str, schema: dict) -> tuple[dict, set[str]]:
    """(properties, required) of the manifest, of an input tensor, or of preprocessing."""
    if name == "manifest":
        return schema["properties"], set(schema["required"])
    if name == "tensor":
        parts = [_resolve(p, schema) for p in schema["$defs"]["input"]["allOf"]]
        return schema["$defs"]["tensor"]["properties"], {r for p in parts for r in p.get("required", [])}
    node = _resolve(schema["properties"][name], schema)
    return node["properties"], set(node["required"])


def accepts(node: dict, kind: str, schema: dict) -> bool:
    """Can a value the schema allows at ``node`` be of JSON ``kind`` (string, integer, number, object,
    array<kind>, dim)? A decoder expecting ``kind`` is compatible when every such value decodes."""
    node = _resolve(node, schema)
    if "oneOf" in node or "anyOf" in node:
        return any(accepts(n, kind, schema) for n in node.get("oneOf", node.get("anyOf")))
    if "allOf" in node:
        return all(accepts(n, kind, schema) for n in node["allOf"])
    types = node.get("type")
    if types is None:
        return "properties" in node or "required" in node or not node  # an allOf refinement, or anything
    types = [types] if isinstance(types, str) else types
    if kind.startswith("array<"):
        return "array" in types and accepts(node.get("items", {}), kind[6:-1], schema)
    if kind == "dim":  # the apps' tolerant dimension readers take integers and turn anything else into -1
        return "integer" in types
    return kind in types or (kind == "number" and "integer" in types)


def contract_problems(fields: dict[str, apps.DecodedField], section: str, schema: dict) -> list[str]:
    props, required = _section(section, schema)
    out = [f"{section}: key {k!r} is not in the schema" for k in sorted(set(fields) - set(props))]
    for key, f in sorted(fields.items()):
        if key in props:
            out += [f"{section}.{key}: the schema allows no {kind}" for kind in sorted(f.kinds)
                    if not accepts(props[key], kind, schema)]
            if f.required and key not in required:
                out.append(f"{section}.{key}: decoding requires it, the schema does not")
    return out


@pytest.fixture(scope="module")
def schema() -> dict:
    return load_manifest_schema()


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> Path:
    """A real export through the pipeline: a user module at 48x64 with a dynamic batch axis."""
    import torch
    from torch import nn

    from mobexport import export

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                          nn.Flatten(), nn.Linear(8, 4)).eval()
    out = tmp_path_factory.mktemp("exports")
    export(model, "onnx-fp32", input_shape=(1, 3, 48, 64), out_dir=out, name="tiny", labels=list("abcd"),
           options={"dynamic_batch": True})
    return out


@pytest.fixture
def manifest(exported) -> dict:
    return json.loads((exported / "tiny" / "onnx-fp32" / "manifest.json").read_text())


# ------------------------------------------------------------------------------------------------- schema

def test_schema_is_a_valid_draft_2020_12_schema(schema):
    import jsonschema

    jsonschema.Draft202012Validator.check_schema(schema)
    assert MANIFEST_SCHEMA_PATH.parent == ROOT / "benchmarks" / "schema"


def test_real_export_follows_the_schema(manifest):
    assert manifest_errors(manifest) == []
    assert manifest["input"]["shape"][0] == "batch" and manifest["preprocessing"]["crop"] == [48, 64]


@pytest.mark.parametrize("change, path", [
    (lambda m: m.pop("sha256"), "<root>"),
    (lambda m: m.update(sha256="ABC"), "sha256"),
    (lambda m: m.update(status="UNAVAILABLE"), "status"),
    (lambda m: m.update(file="x.onnx"), "<root>"),  # a key the writer does not write
    (lambda m: m["preprocessing"].update(crop="224"), "preprocessing/crop"),
    (lambda m: m["preprocessing"].update(crop=[224]), "preprocessing/crop"),
    (lambda m: m["input"].update(shape=[1, 3, 48.5, 64]), "input/shape/2"),
    (lambda m: m["inputs"][0].pop("shape"), "inputs/0"),
    (lambda m: m["fidelity"].update(status="FAILED"), "fidelity/status"),
])
def test_schema_refuses_what_the_writer_never_writes(manifest, change, path):
    bad = copy.deepcopy(manifest)
    change(bad)
    errors = manifest_errors(bad)
    assert errors and any(e.startswith(f"{path}:") for e in errors), errors


@pytest.mark.parametrize("dims", [[1, 3, 48, 64], [None, 3, 48, 64], ["batch", 3, 48, 64]])
def test_schema_takes_fixed_and_dynamic_dimensions(manifest, dims):
    m = copy.deepcopy(manifest)
    m["input"]["shape"] = m["inputs"][0]["shape"] = dims
    m["outputs"][0]["shape"] = [dims[0], 4]
    assert manifest_errors(m) == []


def test_every_manifest_a_test_writes_is_checked(tmp_path, manifest, exported):
    """The conftest hook is in place: the export above went through it, and write_manifest refuses a manifest
    off the schema (written nowhere)."""
    from mobexport.converters import manifest as manifest_module

    try:
        from tests.conftest import VALIDATED_MANIFESTS
    except ImportError:  # tests/ is not a package
        from conftest import VALIDATED_MANIFESTS

    assert (exported / "tiny").resolve() in {d.parent for d in VALIDATED_MANIFESTS}  # its staging folder

    with pytest.raises(AssertionError, match="'sha256' is a required property"):
        manifest_module.write_manifest(tmp_path, {k: v for k, v in manifest.items() if k != "sha256"})
    assert not (tmp_path / "manifest.json").exists()
    manifest_module.write_manifest(tmp_path, manifest)
    assert json.loads((tmp_path / "manifest.json").read_text()) == manifest


# ------------------------------------------------------------------------------------------------- server

def _server_manifest_reads() -> set[str]:
    """Keys benchmarks/server.py reads from a manifest: ``manifest.get("k")`` and ``manifest["k"]``."""
    tree = ast.parse((ROOT / "benchmarks" / "server.py").read_text())
    keys = set()
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get"
                and isinstance(node.func.value, ast.Name) and node.func.value.id == "manifest" and node.args
                and isinstance(node.args[0], ast.Constant)):
            keys.add(node.args[0].value)
        elif (isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name) and node.value.id == "manifest"
              and isinstance(node.slice, ast.Constant)):
            keys.add(node.slice.value)
    return keys


def test_server_reads_only_required_string_keys(schema):
    reads = _server_manifest_reads()
    assert {"model", "target", "artifact"} <= reads
    for key in reads:
        assert key in schema["required"] and accepts(schema["properties"][key], "string", schema), key


def test_server_serves_the_written_manifest_unchanged(exported, manifest):
    from mobexport.benchmarks.server import list_manifests

    served = list_manifests(exported.resolve())
    assert served == [manifest]
    assert manifest_errors(served[0]) == []


# --------------------------------------------------------------------------------------------------- apps

@pytest.mark.parametrize("struct, keys, section", SWIFT_SECTIONS)
def test_swift_decoder_reads_only_schema_fields(schema, struct, keys, section):
    fields = apps.swift_decoded_fields(SWIFT.read_bytes(), struct, keys)
    assert fields and contract_problems(fields, section, schema) == []


@pytest.mark.parametrize("function, section", KOTLIN_SECTIONS)
def test_kotlin_decoder_reads_only_schema_fields(schema, function, section):
    fields = apps.kotlin_decoded_fields(KOTLIN.read_bytes(), function)
    assert fields and contract_problems(fields, section, schema) == []


def test_decoders_read_what_the_apps_need(schema):
    """Both apps read the same keys of each part of the manifest."""
    swift = {sec: set(apps.swift_decoded_fields(SWIFT.read_bytes(), s, k)) for s, k, sec in SWIFT_SECTIONS}
    kotlin: dict[str, set[str]] = {}
    for fn, sec in KOTLIN_SECTIONS:
        kotlin.setdefault(sec, set()).update(apps.kotlin_decoded_fields(KOTLIN.read_bytes(), fn))
    assert swift == kotlin
    assert {"model", "target", "sha256", "artifact", "input", "inputs", "preprocessing"} <= swift["manifest"]


def test_shapes_are_read_with_dynamic_dimensions(schema):
    """The schema allows null and names in a shape; both apps read shape dimension by dimension (a dynamic one
    becomes -1, refused by validate() for that manifest alone), and list entries one by one."""
    dim = schema["$defs"]["dim"]
    assert accepts(dim, "null", schema) and accepts(dim, "string", schema)
    assert apps.swift_decoded_fields(SWIFT.read_bytes(), "InputDescription", "CodingKeys")["shape"].kinds == {
        "array<dim>"}
    assert apps.kotlin_decoded_fields(KOTLIN.read_bytes(), "tensorOf")["shape"].kinds == {"array<dim>"}
    swift, kotlin = SWIFT.read_text(), KOTLIN.read_text()
    assert re.search(r"struct Dimension: Decodable \{.*?\(try\? decoder\.singleValueContainer\(\)\.decode\(Int\.self\)\)"
                     r" \?\? -1", swift, re.S)
    assert re.search(r"manifest = try\? ArtifactManifest\(from: decoder\)", swift)
    assert "[Entry].self" in swift and ".artifacts.compactMap(\\.manifest)" in swift
    kotlin_json = (KOTLIN.parent / "Json.kt").read_text()
    assert re.search(r"fun JSONObject\.dims\(key: String\).*?\?: -1", kotlin_json, re.S)
    assert re.search(r"\.mapNotNull \{\s*try \{\s*fromJson\(.*?catch \(e: BenchmarkException\) \{\s*null",
                     kotlin, re.S)


# ------------------------------------------------------------------- the contract checks can fail

def test_contract_catches_a_key_the_schema_lacks(schema):
    src = SWIFT.read_bytes().replace(b"case artifact\n", b"case artifact\n        case file\n").replace(
        b"file = try c.decodeIfPresent(String.self, forKey: .artifact)",
        b"file = try c.decodeIfPresent(String.self, forKey: .file) ?? (try c.decodeIfPresent(String.self, "
        b"forKey: .artifact))")
    problems = contract_problems(apps.swift_decoded_fields(src, "ArtifactManifest", "Keys"), "manifest", schema)
    assert problems == ["manifest: key 'file' is not in the schema"]


def test_contract_catches_an_incompatible_type(schema):
    src = SWIFT.read_bytes().replace(b"crop = try c.decodeIfPresent([Int].self", b"crop = try c.decodeIfPresent([String].self")
    problems = contract_problems(apps.swift_decoded_fields(src, "PreprocessingDescription", "Keys"),
                                 "preprocessing", schema)
    assert problems == ["preprocessing.crop: the schema allows no array<string>"]


def test_contract_catches_a_required_key_the_schema_makes_optional(schema):
    src = SWIFT.read_bytes().replace(b"layout = try c.decodeIfPresent(String.self, forKey: .layout)",
                                     b"layout = try c.decode(String.self, forKey: .layout)")
    fields = apps.swift_decoded_fields(src, "InputDescription", "CodingKeys")
    assert contract_problems(fields, "tensor", schema) == ["tensor.layout: decoding requires it, the schema does not"]


def test_contract_catches_an_unknown_kotlin_reader():
    src = KOTLIN.read_bytes().replace(b'shape = tensor.dims("shape")', b'shape = tensor.intList("shape")')
    with pytest.raises(apps.AppSourceError, match="do not know"):
        apps.kotlin_decoded_fields(src, "tensorOf")


def _without_required(node):
    if isinstance(node, dict):
        return {k: _without_required(v) for k, v in node.items() if k != "required"}
    if isinstance(node, list):
        return [_without_required(v) for v in node]
    return node


def test_app_fixture_manifest_is_a_subset_of_the_schema(schema):
    """The Android instrumented tests' hand-written manifest holds only schema fields, with schema types."""
    import jsonschema

    fixture = apps.ANDROID_DIR / "app" / "src" / "androidTest" / "assets" / "tiny_conv.manifest.json"
    relaxed = _without_required(schema)
    assert list(jsonschema.Draft202012Validator(relaxed).iter_errors(json.loads(fixture.read_text()))) == []
    assert list(jsonschema.Draft202012Validator(relaxed).iter_errors({"input_shape": [1, 3, 8, 8]}))  # can fail


def test_every_registered_target_fits_the_schema(schema):
    from mobexport.converters import all_targets

    pattern = schema["properties"]["target"]["pattern"]
    targets = all_targets()
    assert targets and all(re.fullmatch(pattern, t.id) for t in targets), [t.id for t in targets]
    assert not re.fullmatch(pattern, "onnx") and not re.fullmatch(pattern, "ONNX-fp32")
