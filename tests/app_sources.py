"""tree-sitter helpers for the companion apps (ios_app/, android_app/).

Two jobs, both without an Apple or Android toolchain:

* strict syntax check of every .swift / .kt / .kts file: ERROR nodes, MISSING nodes, and MISSING nodes that
  tree-sitter keeps hidden (not reachable through ``.children``, visible only in ``str(root_node)``, e.g. the
  Kotlin grammar's ``_class_member_semi``), each reported as ``file:line:col``;
* the JSON keys each app encodes for the result record: the Swift ``Codable`` struct's CodingKeys raw values
  (or property names), and the keys the Kotlin data class's ``toJsonObject()`` writes (org.json ``.field(key,
  property)`` calls), with whether the property is optional/nullable;
* the manifest keys each app decodes, with the JSON kinds its decoder accepts for each (Swift: the
  ``decode(T.self, forKey: .k)`` calls of a type; Kotlin: the reads of one parsing function), and the cases of
  the apps' status enums.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
IOS_DIR = ROOT / "ios_app"
ANDROID_DIR = ROOT / "android_app"
SCHEMA_PATH = ROOT / "benchmarks" / "schema" / "result.schema.json"
EXAMPLES_DIR = ROOT / "benchmarks" / "schema" / "examples"

SWIFT_EXTS = (".swift",)
KOTLIN_EXTS = (".kt", ".kts")
_HIDDEN_MISSING = re.compile(r"\(MISSING ([^()\s]+)")


class AppSourceError(Exception):
    """The sources do not have the shape the extractor expects (e.g. no result struct)."""


@dataclass(frozen=True)
class Problem:
    path: str
    line: int
    col: int
    kind: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.col}: {self.kind}"


@dataclass(frozen=True)
class EncodedField:
    key: str  # the JSON key written
    prop: str  # the Swift/Kotlin property name
    optional: bool  # Swift Optional / Kotlin nullable type


def _ts():
    import tree_sitter as ts

    return ts


def language(path: str | Path):
    """The tree-sitter language for a file name (.swift → Swift, .kt/.kts → Kotlin)."""
    ts = _ts()
    suffix = Path(path).suffix
    if suffix in SWIFT_EXTS:
        import tree_sitter_swift

        return ts.Language(tree_sitter_swift.language())
    if suffix in KOTLIN_EXTS:
        import tree_sitter_kotlin

        return ts.Language(tree_sitter_kotlin.language())
    raise AppSourceError(f"no tree-sitter grammar for {path}")


def parse(src: bytes, lang):
    return _ts().Parser(lang).parse(src)


def source_files(root: Path, exts: tuple[str, ...]) -> list[Path]:
    """Every source file below root with one of the extensions, skipping build outputs."""
    skip = {"build", ".gradle", ".build", "DerivedData", ".swiftpm"}
    return sorted(p for p in root.rglob("*") if p.suffix in exts and p.is_file() and not skip & set(p.parts))


def _walk_problems(node, path: str, out: list[Problem]) -> None:
    if node.type == "ERROR" or node.is_error:
        out.append(Problem(path, node.start_point.row + 1, node.start_point.column + 1, "ERROR"))
    elif node.is_missing:
        out.append(Problem(path, node.start_point.row + 1, node.start_point.column + 1, f"MISSING {node.type}"))
    for child in node.children:
        _walk_problems(child, path, out)


def _hidden_missing(node, path: str, out: list[Problem]) -> None:
    """Locate hidden MISSING nodes: the deepest visible nodes whose subtree text shows ``(MISSING x``."""
    deeper = [c for c in node.children if c.has_error and _HIDDEN_MISSING.search(str(c))]
    if deeper:
        for child in deeper:
            _hidden_missing(child, path, out)
        return
    for kind in _HIDDEN_MISSING.findall(str(node)):
        out.append(Problem(path, node.start_point.row + 1, node.start_point.column + 1, f"MISSING {kind} (hidden)"))


def syntax_problems(src: bytes, lang, path: str = "<source>") -> list[Problem]:
    """All ERROR / MISSING nodes of one file, hidden MISSING nodes included; [] when the file is clean."""
    root = parse(src, lang).root_node
    out: list[Problem] = []
    _walk_problems(root, path, out)
    if not out and _HIDDEN_MISSING.search(str(root)):
        _hidden_missing(root, path, out)
    if not out and root.has_error:
        out.append(Problem(path, 1, 1, "ERROR (tree has_error but no node located)"))
    return out


def check_file(path: Path) -> list[Problem]:
    rel = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
    return syntax_problems(path.read_bytes(), language(path), str(rel))


# ---------------------------------------------------------------------------------------------- extraction


def _text(node) -> str:
    return node.text.decode("utf-8")


def _iter(node):
    yield node
    for child in node.children:
        yield from _iter(child)


def _named_decl(root, node_type: str, name: str):
    for node in _iter(root):
        if node.type == node_type:
            name_node = node.child_by_field_name("name")
            if name_node is not None and _text(name_node) == name:
                return node
    return None


def _swift_properties(body) -> dict[str, bool]:
    """Stored instance properties of a Swift struct body: name → optional."""
    props: dict[str, bool] = {}
    for decl in body.children:
        if decl.type != "property_declaration":
            continue
        modifiers = next((c for c in decl.children if c.type == "modifiers"), None)
        if modifiers is not None and re.search(r"\b(static|class)\b", _text(modifiers)):
            continue
        if any(c.type in ("computed_property", "protocol_property_requirements") for c in decl.children):
            continue
        pattern = decl.child_by_field_name("name")
        annotation = next((c for c in decl.children if c.type == "type_annotation"), None)
        if pattern is None or annotation is None:
            continue
        type_node = annotation.child_by_field_name("name")
        type_text = _text(type_node) if type_node is not None else _text(annotation)
        optional = type_node is not None and type_node.type in ("optional_type", "implicitly_unwrapped_type")
        props[_text(pattern)] = optional or type_text.rstrip().endswith(("?", "!"))
    return props


def _swift_coding_keys(body, enum_name: str = "CodingKeys") -> dict[str, str] | None:
    """CodingKeys cases of a Swift struct body: case name → JSON key (raw value, or the case name)."""
    enum = next(
        (c for c in body.children if c.type == "class_declaration"
         and c.child_by_field_name("name") is not None and _text(c.child_by_field_name("name")) == enum_name),
        None,
    )
    return None if enum is None else _swift_enum_cases(enum)


def _swift_enum_cases(enum) -> dict[str, str]:
    """Cases of a Swift enum declaration: case name → raw value (or the case name)."""
    keys: dict[str, str] = {}
    enum_body = enum.child_by_field_name("body")
    for entry in (c for c in enum_body.children if c.type == "enum_entry"):
        last = None
        for child in entry.children:
            field = entry.field_name_for_child(entry.children.index(child))
            if field == "name":
                last = _text(child)
                keys[last] = last
            elif field == "raw_value" and last is not None:
                keys[last] = _swift_string_value(child)
    return keys


def _swift_string_value(node) -> str:
    parts = [_text(c) for c in _iter(node) if c.type == "line_str_text"]
    if not parts and any(c.type == "interpolated_expression" for c in _iter(node)):
        raise AppSourceError(f"CodingKeys raw value {_text(node)} is not a plain string literal")
    return "".join(parts)


def _swift_encoded_keys(body) -> set[str] | None:
    """Case names used as ``forKey: .x`` in a hand-written ``encode(to:)``, or None when there is none."""
    for decl in body.children:
        if decl.type == "function_declaration" and _text(decl.child_by_field_name("name")) == "encode":
            return set(re.findall(r"forKey:\s*\.(\w+)", _text(decl)))
    return None


def swift_encoded_fields(src: bytes, struct_name: str = "BenchmarkResult") -> dict[str, EncodedField]:
    """The JSON keys the Swift Codable struct writes, keyed by JSON key."""
    root = parse(src, language("x.swift")).root_node
    decl = _named_decl(root, "class_declaration", struct_name)
    if decl is None:
        raise AppSourceError(f"no Swift type named {struct_name}")
    body = decl.child_by_field_name("body")
    props = _swift_properties(body)
    coding_keys = _swift_coding_keys(body)
    if coding_keys is None:
        coding_keys = {name: name for name in props}
    unknown = sorted(set(coding_keys) - set(props))
    if unknown:
        raise AppSourceError(f"{struct_name}.CodingKeys has cases without a stored property: {unknown}")
    uncoded = sorted(set(props) - set(coding_keys))
    if uncoded:
        raise AppSourceError(f"{struct_name} properties not in CodingKeys (never encoded): {uncoded}")
    encoded = _swift_encoded_keys(body)
    if encoded is not None and encoded != set(coding_keys):
        missing = sorted(set(coding_keys) - encoded)
        extra = sorted(encoded - set(coding_keys))
        raise AppSourceError(f"{struct_name}.encode(to:) does not write every key: missing {missing}, extra {extra}")
    return {key: EncodedField(key, prop, props[prop]) for prop, key in coding_keys.items()}


_KOTLIN_FIELD = re.compile(r'\.field\(\s*"([^"]+)"\s*,\s*(\w+)\s*\)')


def kotlin_encoded_fields(src: bytes, class_name: str = "BenchmarkResult",
                          function_name: str = "toJsonObject") -> dict[str, EncodedField]:
    """The JSON keys the Kotlin data class writes, keyed by JSON key: the ``.field("key", property)`` calls of its
    ``toJsonObject()`` (org.json), each property a constructor parameter. A parameter never written, a key written
    twice or a write of something that is not a parameter is an error."""
    root = parse(src, language("x.kt")).root_node
    decl = next(
        (n for n in _iter(root) if n.type == "class_declaration"
         and any(c.type == "identifier" and _text(c) == class_name for c in n.children)),
        None,
    )
    if decl is None:
        raise AppSourceError(f"no Kotlin class named {class_name}")
    modifiers = next((c for c in decl.children if c.type == "modifiers"), None)
    if modifiers is None or not re.search(r"\bdata\b", _text(modifiers)):
        raise AppSourceError(f"{class_name} must be a data class")
    params: dict[str, bool] = {}
    for param in (n for n in _iter(decl) if n.type == "class_parameter"):
        name = next(c for c in param.children if c.type == "identifier")
        type_node = next(c for c in param.children if c.type in ("user_type", "nullable_type", "function_type"))
        params[_text(name)] = type_node.type == "nullable_type"
    fn = next((n for n in _iter(decl) if n.type == "function_declaration"
               and any(c.type == "identifier" and _text(c) == function_name for c in n.children)), None)
    if fn is None:
        raise AppSourceError(f"{class_name} has no {function_name}()")
    fields: dict[str, EncodedField] = {}
    for key, prop in _KOTLIN_FIELD.findall(_text(fn)):
        if key in fields:
            raise AppSourceError(f"{class_name}: key {key!r} written twice")
        if prop not in params:
            raise AppSourceError(f"{class_name}.{function_name} writes {prop}, which is not a constructor property")
        fields[key] = EncodedField(key, prop, params[prop])
    unwritten = sorted(set(params) - {f.prop for f in fields.values()})
    if unwritten:
        raise AppSourceError(f"{class_name} properties never written by {function_name}: {unwritten}")
    return fields


def compare_with_schema(fields: dict[str, EncodedField], schema: dict) -> list[str]:
    """Differences between the encoded fields and the schema: missing/extra keys, optional required ones."""
    props, required = set(schema["properties"]), set(schema.get("required", []))
    out = [f"missing schema key {k!r}" for k in sorted(props - set(fields))]
    out += [f"key {k!r} is not in the schema" for k in sorted(set(fields) - props)]
    out += [f"required key {k!r} is optional ({fields[k].prop})" for k in sorted(required & set(fields))
            if fields[k].optional]
    return out


# ------------------------------------------------------------------------------------- manifest decoding


@dataclass(frozen=True)
class DecodedField:
    key: str  # the JSON key read
    kinds: frozenset[str]  # JSON kinds the decoder takes: string, integer, number, object, array<kind>, dim
    required: bool  # decoding the object fails without it


_SWIFT_KINDS = {"String": "string", "Int": "integer", "Double": "number", "Dimension": "dim"}
_SWIFT_DECODE = re.compile(r"(try\??)\s+\w+\.decode(IfPresent)?\(\s*(\[?)(\w+)\]?\.self,\s*forKey:\s*\.(\w+)\s*\)")


def _swift_kind(element: str, is_array: bool) -> str:
    kind = _SWIFT_KINDS.get(element, "object")  # any other Decodable type is a nested JSON object
    return f"array<{kind}>" if is_array else kind


def swift_decoded_fields(src: bytes, struct_name: str, keys_enum: str) -> dict[str, DecodedField]:
    """The manifest keys a Swift Decodable type reads in its hand-written decoding, keyed by JSON key. Every
    case of ``keys_enum`` must be read (a key declared but never decoded is an error)."""
    root = parse(src, language("x.swift")).root_node
    decl = _named_decl(root, "class_declaration", struct_name)
    if decl is None:
        raise AppSourceError(f"no Swift type named {struct_name}")
    cases = _swift_coding_keys(decl.child_by_field_name("body"), keys_enum)
    if cases is None:
        raise AppSourceError(f"{struct_name} has no enum {keys_enum}")
    kinds: dict[str, set[str]] = {}
    required: set[str] = set()
    for m in _SWIFT_DECODE.finditer(_text(decl)):
        tried, if_present, is_array, element, case = m.groups()
        if case not in cases:
            raise AppSourceError(f"{struct_name} decodes .{case}, which is not a case of {keys_enum}")
        kinds.setdefault(cases[case], set()).add(_swift_kind(element, bool(is_array)))
        if not if_present and tried == "try":
            required.add(cases[case])
    unread = sorted(set(cases.values()) - set(kinds))
    if unread:
        raise AppSourceError(f"{struct_name}.{keys_enum} declares keys it never decodes: {unread}")
    return {k: DecodedField(k, frozenset(v), k in required) for k, v in kinds.items()}


_KOTLIN_READS = (  # org.json reads (benchkit's Json.kt helpers)
    (re.compile(r'\.string\("(\w+)"\)'), {"string"}),
    (re.compile(r'\.dims\("(\w+)"\)'), {"array<dim>"}),
    (re.compile(r'\.doubleList\("(\w+)"\)'), {"array<number>"}),
    (re.compile(r'\.optJSONObject\("(\w+)"\)'), {"object"}),
    (re.compile(r'\.optJSONArray\("(\w+)"\)\?\.optJSONObject\(0\)'), {"array<object>"}),
    (re.compile(r'\.int\("(\w+)"\)'), {"integer"}),
    (re.compile(r'cropOf\(\w+\.opt\("(\w+)"\)\)'), {"integer", "array<integer>"}),
)
_KOTLIN_ANY_READ = re.compile(r'(?:\["|\.\w+\(")(\w+)"')


def kotlin_decoded_fields(src: bytes, function_name: str) -> dict[str, DecodedField]:
    """The manifest keys one Kotlin parsing function reads, keyed by JSON key (Kotlin reads are all tolerant:
    a missing key is a default). A read of a form this extractor does not know is an error, so a new reader
    cannot slip past the contract tests."""
    root = parse(src, language("x.kt")).root_node
    fn = next((n for n in _iter(root) if n.type == "function_declaration"
               and any(c.type == "identifier" and _text(c) == function_name for c in n.children)), None)
    if fn is None:
        raise AppSourceError(f"no Kotlin function named {function_name}")
    text = _text(fn)
    kinds: dict[str, set[str]] = {}
    known = 0
    for pattern, accepted in _KOTLIN_READS:
        for m in pattern.finditer(text):
            kinds.setdefault(m.group(1), set()).update(accepted)
            known += 1
    if known != len(_KOTLIN_ANY_READ.findall(text)):
        raise AppSourceError(f"{function_name} reads keys in a form the contract tests do not know: "
                             f"{_KOTLIN_ANY_READ.findall(text)}")
    return {k: DecodedField(k, frozenset(v), False) for k, v in kinds.items()}


def swift_enum_values(src: bytes, enum_name: str) -> list[str]:
    """Raw values (or case names) of a top-level Swift enum."""
    decl = _named_decl(parse(src, language("x.swift")).root_node, "class_declaration", enum_name)
    if decl is None:
        raise AppSourceError(f"no Swift enum named {enum_name}")
    return list(_swift_enum_cases(decl).values())


def kotlin_enum_entries(src: bytes, enum_name: str) -> list[str]:
    """Entry names of a Kotlin enum class."""
    root = parse(src, language("x.kt")).root_node
    decl = next((n for n in _iter(root) if n.type == "class_declaration"
                 and any(c.type == "identifier" and _text(c) == enum_name for c in n.children)), None)
    body = None if decl is None else next((c for c in decl.children if c.type == "enum_class_body"), None)
    if body is None:
        raise AppSourceError(f"no Kotlin enum class named {enum_name}")
    return [_text(next(c for c in e.children if c.type == "identifier"))
            for e in body.children if e.type == "enum_entry"]
