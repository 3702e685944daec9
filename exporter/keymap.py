"""Checkpoint key mapping: the one engine behind every reference layout that exporter/weights.py loads.

A layout's mapping is data — a rule table beside its family in exporter/models/ — of one of four kinds, each
implemented once here and applied in both directions: ``apply(sd, to_ours=True)`` renames a reference
state_dict into our module names, ``to_ours=False`` renames ours into the reference's (round trips, and naming a
mismatch in the file's own key names).

- ``Regex``: ordered (pattern, replacement) renames applied to every key in turn, one list per direction (a
  replacement may compute, e.g. ``stage{s}`` ↔ ``stages.{s-1}``); ``ren`` renames a whole dotted segment.
- ``Prefixes``: (ours, theirs) prefix pairs, the longest matching prefix wins; ``{i}`` stands for one key segment
  carried over. Inverted by swapping each pair.
- ``Grouped``: ``Prefixes`` chosen per module (e.g. per block) by a marker that one of the module's keys starts
  with, for code bases that name one parameter differently in different block kinds.
- ``Tables``: exact module tables, one per model variant; every key must map, and the table whose modules the
  file covers most completely wins. A row may carry a per-tensor ``Transform`` (a 1×1 conv's weight ↔ a Linear's).

Keys that a Regex, Prefixes or Grouped mapping does not name pass through unchanged; a key no Tables row names,
or two keys sent to one name, make the mapping fail with a KeyError that names them (the loader then tries the
next layout). Anything with ``apply(sd, to_ours) -> sd`` can serve as a family's mapping (a checkpoint filter
function, in timm's sense).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Protocol

import torch

StateDict = dict[str, torch.Tensor]
Pair = tuple[str, str]  # (ours, theirs)
Rule = tuple[str, str | Callable[[re.Match], str]]  # (pattern, replacement) for re.sub


class KeyMap(Protocol):
    def apply(self, sd: StateDict, to_ours: bool) -> StateDict: ...


def _rebuild(sd: StateDict, rename: Callable[[str, torch.Tensor], tuple[str, torch.Tensor]]) -> StateDict:
    out: StateDict = {}
    source: dict[str, str] = {}
    for key, value in sd.items():
        new, value = rename(key, value)
        if new in out:
            raise KeyError(f"'{source[new]}' and '{key}' both map to '{new}'")
        out[new], source[new] = value, key
    return out


@dataclass(frozen=True)
class Regex:
    to_ours_rules: tuple[Rule, ...]
    from_ours_rules: tuple[Rule, ...]

    def apply(self, sd: StateDict, to_ours: bool) -> StateDict:
        rules = self.to_ours_rules if to_ours else self.from_ours_rules

        def rename(key: str, value: torch.Tensor) -> tuple[str, torch.Tensor]:
            for pattern, repl in rules:
                key = re.sub(pattern, repl, key)
            return key, value

        return _rebuild(sd, rename)


def ren(old: str, new: str) -> Rule:
    """Rename the whole dotted key segment(s) ``old`` (at the start or after a dot) to ``new``."""
    return rf"(^|\.){re.escape(old)}\.", rf"\g<1>{new}."


def segment_renames(pairs: Sequence[Pair], first: Regex = Regex((), ())) -> Regex:
    """A Regex renaming whole dotted segments, (ours, theirs) pairs, after ``first``'s rules."""
    return Regex(first.to_ours_rules + tuple(ren(t, o) for o, t in pairs),
                 first.from_ours_rules + tuple(ren(o, t) for o, t in pairs))


@cache
def _longest_first(pairs: tuple[Pair, ...], to_ours: bool) -> list[tuple[re.Pattern, str]]:
    """(source prefix as a regex, destination as a str.format pattern), longest source first; a template's
    ``{name}`` matches one key segment ("blocks.{i}.conv1.")."""
    ordered = [(t, o) if to_ours else (o, t) for o, t in sorted(pairs, key=lambda p: -len(p[int(to_ours)]))]
    return [(re.compile(re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^.]+)", re.escape(src))), dst) for src, dst in ordered]


@dataclass(frozen=True)
class Prefixes:
    pairs: tuple[Pair, ...]

    def rename(self, key: str, to_ours: bool) -> str:
        for pattern, dst in _longest_first(self.pairs, to_ours):
            m = pattern.match(key)
            if m:
                return dst.format(**m.groupdict()) + key[m.end():]
        return key

    def apply(self, sd: StateDict, to_ours: bool) -> StateDict:
        return _rebuild(sd, lambda key, value: (self.rename(key, to_ours), value))


@dataclass(frozen=True)
class Grouped:
    scope: str  # regex of a module's key prefix, the same in both layouts (r"blocks\.\d+\.\d+\.")
    kinds: tuple[tuple[Pair, Prefixes], ...]  # ((ours marker, theirs marker), table): the first that matches
    default: Prefixes  # a module none of whose keys starts with a kind's marker
    outside: Prefixes  # keys outside every module

    def apply(self, sd: StateDict, to_ours: bool) -> StateDict:
        scope, side = re.compile(self.scope), int(to_ours)
        rests: dict[str, list[str]] = {}
        for m in filter(None, map(scope.match, sd)):
            rests.setdefault(m.group(0), []).append(m.string[m.end():])
        tables = {module: next((table for marks, table in self.kinds
                                if any(r.startswith(marks[side]) for r in keys)), self.default)
                  for module, keys in rests.items()}

        def rename(key: str, value: torch.Tensor) -> tuple[str, torch.Tensor]:
            m = scope.match(key)
            if not m:
                return self.outside.rename(key, to_ours), value
            return m.group(0) + tables[m.group(0)].rename(key[m.end():], to_ours), value

        return _rebuild(sd, rename)


@dataclass(frozen=True)
class Transform:
    """An invertible change of one parameter (``leaf``) of a table row's module."""

    to_ours: Callable[[torch.Tensor], torch.Tensor]
    from_ours: Callable[[torch.Tensor], torch.Tensor]
    leaf: str = "weight"


# theirs a 1×1 conv's weight (O, I, 1, 1) where ours is a Linear's (O, I)
CONV1X1 = Transform(lambda v: v.flatten(1) if v.dim() == 4 else v, lambda v: v[:, :, None, None] if v.dim() == 2 else v)

Row = tuple[str, str, Transform | None]  # (our module path, their module path, transform); leaves are shared


@dataclass(frozen=True)
class Tables:
    variants: Sequence[Sequence[Row]]  # one table per model variant

    def apply(self, sd: StateDict, to_ours: bool) -> StateDict:
        used = {k.rpartition(".")[0] for k in sd}
        best: tuple[int, StateDict] | None = None
        failures = []
        for rows in self.variants:
            table = {(t if to_ours else o): (o if to_ours else t, fn) for o, t, fn in rows}
            try:
                out = _rebuild(sd, lambda key, value, table=table: _row_rename(table, to_ours, key, value))
            except KeyError as e:
                failures.append(e.args[0])
                continue
            left = len(set(table) - used)
            if best is None or left < best[0]:
                best = (left, out)
        if best is None:
            direction = "reference → ours" if to_ours else "ours → reference"
            raise KeyError(f"no variant's key table maps every key ({direction}; the first: {'; '.join(failures[:1])})")
        return best[1]


def _row_rename(table: dict[str, tuple[str, Transform | None]], to_ours: bool, key: str,
                value: torch.Tensor) -> tuple[str, torch.Tensor]:
    module, _, leaf = key.rpartition(".")
    if module not in table:
        raise KeyError(f"no row for '{key}'")
    new, fn = table[module]
    if fn is not None and leaf == fn.leaf:
        value = (fn.to_ours if to_ours else fn.from_ours)(value)
    return f"{new}.{leaf}", value
