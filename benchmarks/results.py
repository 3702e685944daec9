"""The one benchmark result record (``schema/result.schema.json``) as a dataclass, its statistics, and
payload validation. Shared by the host harness, the store, the server and the companion apps' uploads.

Latencies are milliseconds of round trips (set input → invoke → read output) after warm-up; the minimum is
the headline, the full distribution is kept in ``samples_ms``.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields
from functools import lru_cache
from pathlib import Path
from typing import Any

from mobexport.exporter.errors import UsageError
from mobexport.exporter.status import Status

__all__ = ["SCHEMA_PATH", "SCHEMA_VERSION", "BenchmarkResult", "LatencyStats", "PayloadError", "Status",
           "compute_stats", "load_schema", "validate_payload"]

SCHEMA_VERSION = "1.0"
SCHEMA_PATH = Path(__file__).resolve().parent / "schema" / "result.schema.json"
HARNESSES = ("host", "ios_app", "android_app")


class PayloadError(UsageError):
    """A result payload that does not follow result.schema.json; ``reason`` names the offending field."""

    def __init__(self, reason: str):
        super().__init__(f"invalid result payload: {reason}")
        self.reason = reason


@dataclass(frozen=True)
class LatencyStats:
    min_ms: float
    p50_ms: float
    p90_ms: float
    mean_ms: float
    std_ms: float
    max_ms: float


def _percentile(sorted_ms: list[float], q: float) -> float:
    """Linear-interpolated percentile (numpy's default 'linear' method) of an already sorted list."""
    pos = (len(sorted_ms) - 1) * q
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_ms) - 1)
    return sorted_ms[lo] + (sorted_ms[hi] - sorted_ms[lo]) * (pos - lo)


def compute_stats(samples_ms: list[float]) -> LatencyStats:
    """min / p50 / p90 / mean / population std / max of raw samples (ms)."""
    if not samples_ms:
        raise UsageError("no latency samples to summarise")
    s = sorted(float(x) for x in samples_ms)
    if s[0] < 0 or not all(math.isfinite(x) for x in s):
        raise UsageError("latency samples must be finite and non-negative")
    mean = math.fsum(s) / len(s)
    var = math.fsum((x - mean) ** 2 for x in s) / len(s)
    return LatencyStats(min_ms=s[0], p50_ms=_percentile(s, 0.5), p90_ms=_percentile(s, 0.9), mean_ms=mean,
                        std_ms=math.sqrt(var), max_ms=s[-1])


@dataclass
class BenchmarkResult:
    """One benchmark run of one artifact on one device — exactly the schema's fields."""

    model: str
    weights: str
    target: str
    artifact_sha256: str
    harness: str
    device_model: str
    os: str
    os_version: str
    chip: str
    runtime: str
    runtime_version: str
    compute_unit: str
    input_shape: list[int]
    batch_size: int
    warmup: int
    runs: int
    min_ms: float
    p50_ms: float
    p90_ms: float
    mean_ms: float
    std_ms: float
    max_ms: float
    samples_ms: list[float]
    validation_status: str
    timestamp: str
    threads: int | None = None
    load_ms: float | None = None
    peak_rss_mb: float | None = None
    thermal_state_before: str | None = None
    thermal_state_after: str | None = None
    tool_versions: dict[str, str] = field(default_factory=dict)
    git_commit: str | None = None
    notes: str | None = None
    schema_version: str = SCHEMA_VERSION

    @classmethod
    def from_samples(cls, samples_ms: list[float], **kw: Any) -> BenchmarkResult:
        """Build a record whose statistics are computed from the raw samples (the harness's path)."""
        stats = compute_stats(samples_ms)
        return cls(samples_ms=[float(x) for x in samples_ms], **asdict(stats), **kw)

    def to_dict(self, *, samples: bool = True) -> dict[str, Any]:
        """The record as a dict (lists and dicts copied, one level: the fields hold numbers and text). Not
        ``dataclasses.asdict``, which copies a 100,000-sample list element by element."""
        d = {f.name: getattr(self, f.name) for f in fields(self) if samples or f.name != "samples_ms"}
        for k, v in d.items():
            if isinstance(v, (list, dict)):
                d[k] = type(v)(v)
        d["validation_status"] = str(d["validation_status"])
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any], *, validate: bool = True) -> BenchmarkResult:
        if validate:
            validate_payload(d)
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})

    @property
    def status(self) -> Status:
        return Status(self.validation_status)


BASELINE_TARGETS = ("torch-fp32",)  # timed without a converter (benchmarks.harness.bench_torch)


def target_ids() -> tuple[str, ...]:
    """The result schema's target values: every target of the converter registry, and the baselines."""
    from mobexport.converters import all_targets

    return tuple(sorted({t.id for t in all_targets()} | set(BASELINE_TARGETS)))


def load_schema() -> dict[str, Any]:
    """result.schema.json with ``target`` limited to ``target_ids()`` (the file holds the <format>-<scheme> shape
    only, so that the apps' copy does not go stale when a converter is added)."""
    return _schema(target_ids())


@lru_cache(maxsize=4)
def _schema(targets: tuple[str, ...]) -> dict[str, Any]:
    schema = json.loads(SCHEMA_PATH.read_text())
    schema["properties"]["target"]["enum"] = list(targets)
    return schema


@lru_cache(maxsize=4)
def _validator(targets: tuple[str, ...]):
    import jsonschema

    schema = _schema(targets)
    cls = jsonschema.validators.validator_for(schema)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


def validate_payload(d: Any) -> None:
    """Raise PayloadError (with the first failing field) unless ``d`` follows result.schema.json.

    Beyond the schema: the statistics must be consistent with the samples (min ≤ p50 ≤ p90 ≤ max) and
    ``runs`` must equal the number of samples, so a record cannot claim numbers it does not carry."""
    if not isinstance(d, dict):
        raise PayloadError(f"expected a JSON object, got {type(d).__name__}")
    _check_storable(d)
    bulk = _bulk_rule()
    samples = d.get("samples_ms")
    short = {**d, "samples_ms": samples[:1]} if bulk and isinstance(samples, list) and len(samples) > 1 else d
    err = next(iter(sorted(_validator(target_ids()).iter_errors(short), key=lambda e: list(e.path))), None)
    if err is not None:
        where = "/".join(str(p) for p in err.absolute_path) or "(record)"
        raise PayloadError(f"{where}: {err.message[:300]}")
    if short is not d:
        _check_samples(samples, *bulk)
    _check_integer_range(d)
    _check_timestamp(d["timestamp"])
    if len(d["samples_ms"]) != d["runs"]:
        raise PayloadError(f"runs: {d['runs']} but samples_ms has {len(d['samples_ms'])} entries")
    tol = 1e-6
    if not (d["min_ms"] <= d["p50_ms"] + tol and d["p50_ms"] <= d["p90_ms"] + tol
            and d["p90_ms"] <= d["max_ms"] + tol):
        raise PayloadError("statistics out of order: need min_ms <= p50_ms <= p90_ms <= max_ms")
    if abs(min(d["samples_ms"]) - d["min_ms"]) > max(tol, 1e-3 * d["min_ms"]):
        raise PayloadError(f"min_ms {d['min_ms']} is not the minimum of samples_ms ({min(d['samples_ms'])})")


@lru_cache(maxsize=1)
def _bulk_rule() -> tuple[float | None, int | None] | None:
    """(minimum, maxItems) of ``samples_ms`` when its items are plain numbers with at most a minimum, else None.
    Then the samples are checked by one loop instead of a jsonschema call each (a 100,000-sample record took
    about a second of CPU that way, on the server's one interpreter lock)."""
    prop = load_schema()["properties"]["samples_ms"]
    items = prop.get("items", {})
    if items.get("type") != "number" or set(items) - {"type", "minimum"} or set(prop) - {"type", "items",
                                                                                           "minItems", "maxItems"}:
        return None
    return items.get("minimum"), prop.get("maxItems")


def _check_samples(samples: list[Any], minimum: float | None, max_items: int | None) -> None:
    """``samples_ms`` against its schema rule (``_bulk_rule``); the first failing sample is named as jsonschema would."""
    if max_items is not None and len(samples) > max_items:
        raise PayloadError(f"samples_ms: {len(samples)} samples, more than the {max_items} allowed")
    for i, x in enumerate(samples):
        if type(x) not in (int, float):  # bool is not a number in JSON Schema
            raise PayloadError(f"samples_ms/{i}: {str(x)[:40]!r} is not of type 'number'")
        if minimum is not None and x < minimum:
            raise PayloadError(f"samples_ms/{i}: {x} is less than the minimum of {minimum}")


INT_RANGE = (-(2 ** 31), 2 ** 31 - 1)  # the database's integer columns (PostgreSQL INTEGER)


def _check_storable(d: dict[str, Any]) -> None:
    """Values the schema allows but no database holds: a non-finite number (JSON ``1e400`` parses to infinity,
    Python's parser takes ``NaN``), text with NUL (PostgreSQL refuses it) or a lone surrogate (not UTF-8).
    Walks the payload without recursion, keys included."""
    stack: list[tuple[str, Any]] = [(k, v) for k, v in d.items()]
    while stack:
        where, value = stack.pop()  # ``where`` is the path of keys, so a bad key is caught as well
        for text in (where, value) if isinstance(value, str) else (where,):
            if "\x00" in text:
                raise PayloadError(f"{_shown(where)}: text holds NUL (\\x00), which the database cannot store")
            if not text.isascii() and not _is_utf8(text):
                raise PayloadError(f"{_shown(where)}: text is not valid UTF-8 (a lone surrogate)")
        if isinstance(value, float) and not math.isfinite(value):
            raise PayloadError(f"{_shown(where)}: {value} is not a finite number")
        if isinstance(value, dict):
            stack.extend((f"{where}/{k}", v) for k, v in value.items())
        elif isinstance(value, list) and all(type(v) in (int, float) for v in value):  # numbers only (samples):
            bad = next((i for i, v in enumerate(value) if not _finite(v)), None)  # no path built per item
            if bad is not None:
                raise PayloadError(f"{_shown(where)}/{bad}: {str(value[bad])[:40]} is not a finite number")
        elif isinstance(value, list):
            stack.extend((f"{where}/{i}", v) for i, v in enumerate(value))


def _finite(x: float) -> bool:
    """A finite float, or an integer a float can hold (``float(10**400)`` overflows)."""
    try:
        return math.isfinite(x)
    except OverflowError:
        return False


@lru_cache(maxsize=1)
def _integer_fields() -> tuple[str, ...]:
    """The schema's integer properties (and arrays of integers): ``threads``, ``batch_size``, ``input_shape``..."""
    def types(p: dict[str, Any]) -> list[str]:
        t = p.get("type", [])
        return [t] if isinstance(t, str) else t

    props = load_schema()["properties"]
    return tuple(k for k, p in props.items() if "integer" in types(p) or "integer" in types(p.get("items", {})))


def _check_integer_range(d: dict[str, Any]) -> None:
    """Integer fields must fit the database's 32-bit integer columns (PostgreSQL INTEGER). JSON Schema counts
    ``1443.0`` as an integer, so integral floats are checked too."""
    for k in _integer_fields():
        for x in d[k] if isinstance(d.get(k), list) else [d.get(k)]:
            if x is not None and not INT_RANGE[0] <= x <= INT_RANGE[1]:
                shown = f"{x:.6g}" if isinstance(x, float) else f"a {x.bit_length()}-bit integer"
                raise PayloadError(f"{k}: {shown} does not fit the database's 32-bit integers")


def _is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _shown(where: str) -> str:
    """A field path safe to put in a message (and a JSON response): escapes, at most 80 characters."""
    return where.encode("ascii", "backslashreplace").decode().replace("\x00", "\\x00")[:80]


def _check_timestamp(ts: str) -> None:
    """RFC 3339 date-time with a time zone (jsonschema checks ``format`` only with optional extras)."""
    from datetime import datetime

    if len(ts) > 64:  # the column's width; Python parses any number of fractional digits
        raise PayloadError(f"timestamp: longer than 64 characters ({len(ts)})")
    try:
        parsed = datetime.fromisoformat(ts.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise PayloadError(f"timestamp: '{ts[:64]}' is not an RFC 3339 date-time") from None
    if parsed.tzinfo is None:
        raise PayloadError(f"timestamp: '{ts[:64]}' has no time zone (use Z or +hh:mm)")


def fidelity_summary(target: str, fidelity: dict[str, Any] | None) -> str:
    """One line for a table: ``rel 1.2e-07`` (max |Δ| / output range) for float targets, ``agree 0.990, 31.2 dB``
    (top-1 agreement and SQNR) for targets with int8 activations; ``-`` without metrics (not validated)."""
    m = (fidelity or {}).get("metrics") or {}
    if not m:
        return "-"
    from mobexport.converters import resolve_target
    from mobexport.exporter.errors import MobexportError

    try:
        int8 = resolve_target(target).needs_calibration
    except MobexportError:  # a target this mobexport does not know: show what the metrics say
        int8 = "top1_agreement" in m and "output_range" not in m
    if int8:
        sqnr = m.get("sqnr_db")
        return f"agree {m.get('top1_agreement', float('nan')):.3f}, " + (f"{sqnr:.1f} dB" if sqnr is not None
                                                                          else "- dB")
    rng = m.get("output_range") or 0
    return f"rel {m.get('max_abs', 0) / rng:.2e}" if rng else f"abs {m.get('max_abs', 0):.2e}"
