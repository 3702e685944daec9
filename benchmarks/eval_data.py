"""Labelled image data for ``mobexport eval``: an ImageFolder tree or a ``path,label`` CSV, checked before any work.

ImageFolder: one subfolder per class (nested folders inside a class are read too); the folder name is matched to
the model's labels exactly, then ignoring case, spaces and underscores, then against one comma-separated synonym
of a label (``fox_squirrel`` → ``fox squirrel, eastern fox squirrel, Sciurus niger``) when that names one class
only; an integer folder name is a class index (the only way when the artifact has no labels).
CSV: rows ``path,label`` (an optional ``path,label`` header), label a class name or an integer index, relative
paths relative to the CSV file.

The dataset fingerprint is the sha256 of the sorted (relative path, label) list, so two runs on the same files
with the same labels share it. Bad input raises ``UsageError`` naming the first offenders.
"""

from __future__ import annotations

import csv
import difflib
import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from mobexport.exporter.errors import UsageError

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".gif", ".tif", ".tiff", ".ppm", ".pgm"})
_SHOW = 5  # offenders named in an error message


@dataclass(frozen=True)
class Sample:
    path: Path
    rel: str  # path relative to the data folder / CSV folder (posix), as fingerprinted
    label: str  # folder name or the CSV's label, as written


@dataclass
class LabelledData:
    source: Path  # the folder or the CSV file
    layout: str  # "imagefolder" | "csv"
    samples: list[Sample]

    @property
    def fingerprint(self) -> str:
        items = sorted((s.rel, s.label) for s in self.samples)
        return hashlib.sha256(json.dumps(items, ensure_ascii=False).encode()).hexdigest()

    @property
    def raw_labels(self) -> list[str]:
        return sorted({s.label for s in self.samples})

    def class_indices(self, labels: list[str] | None, num_classes: int | None) -> list[int]:
        """The class index of every sample under a model's ``labels`` (or integer indices when it has none)."""
        mapping, bad = {}, []
        for raw in self.raw_labels:
            try:
                mapping[raw] = match_label(raw, labels, num_classes)
            except UsageError as e:
                bad.append(e.message)
        if bad:
            what = "class folder" if self.layout == "imagefolder" else "label"
            more = f" (and {len(bad) - _SHOW} more)" if len(bad) > _SHOW else ""
            raise UsageError(f"{len(bad)} {what}(s) of {self.source} match no class of the model{more}:\n  "
                             + "\n  ".join(bad[:_SHOW]))
        return [mapping[s.label] for s in self.samples]


def _norm(s: str) -> str:
    return re.sub(r"[\s_]+", "", s).casefold()


def _index(raw: str, n: int | None) -> int | None:
    if not re.fullmatch(r"\d+", raw.strip()):
        return None
    i = int(raw)
    if n is not None and i >= n:
        raise UsageError(f"'{raw}': class index out of range (the model has {n} classes)")
    return i


def match_label(raw: str, labels: list[str] | None, num_classes: int | None = None) -> int:
    """Index of the class ``raw`` names (see the module docstring for the matching order)."""
    if not labels:
        i = _index(raw, num_classes)
        if i is None:
            raise UsageError(f"'{raw}': the artifact has no labels, so class names must be integer indices")
        return i
    for key in (lambda s: s, _norm):
        hits = [i for i, lab in enumerate(labels) if key(lab) == key(raw)]
        if len(hits) == 1:
            return hits[0]
        if len(hits) > 1:
            raise UsageError(f"'{raw}' names several classes ({', '.join(map(str, hits))}): use the index")
    syn = sorted({i for i, lab in enumerate(labels) for part in lab.split(",") if _norm(part) == _norm(raw)})
    if len(syn) == 1:
        return syn[0]
    if len(syn) > 1:
        raise UsageError(f"'{raw}' is a synonym of several classes ({', '.join(map(str, syn))}): use the index")
    i = _index(raw, len(labels))
    if i is not None:
        return i
    pool = {part.strip(): None for lab in labels for part in lab.split(",")}
    near = difflib.get_close_matches(raw.replace("_", " "), list(pool), n=3, cutoff=0.6)
    return _raise_unknown(raw, near)


def _raise_unknown(raw: str, near: list[str]) -> int:
    hint = f" Did you mean: {', '.join(near)}?" if near else ""
    raise UsageError(f"'{raw}' matches no label.{hint}")


def _visible(p: Path) -> bool:
    return not p.name.startswith(".")


def _is_image(p: Path) -> bool:
    return p.suffix.lower() in IMAGE_SUFFIXES


def _named(paths: list[str], what: str, where: Path) -> UsageError:
    more = f" (and {len(paths) - _SHOW} more)" if len(paths) > _SHOW else ""
    return UsageError(f"{len(paths)} {what} in {where}: {', '.join(paths[:_SHOW])}{more}",
                      hint=f"image files only ({', '.join(sorted(IMAGE_SUFFIXES))}); one subfolder per class")


def _image_folder(root: Path) -> list[Sample]:
    entries = sorted(p for p in root.iterdir() if _visible(p))
    loose = [p.name for p in entries if not p.is_dir()]
    if loose:
        raise _named(loose, "file(s) outside a class folder", root)
    if not entries:
        raise UsageError(f"--data {root} is empty: expected one subfolder of images per class, or a CSV")
    samples, others, empty = [], [], []
    for folder in entries:
        files = sorted(f for f in folder.rglob("*") if f.is_file()
                       and all(_visible(q) for q in f.relative_to(folder).parents[:-1]) and _visible(f))
        others += [f.relative_to(root).as_posix() for f in files if not _is_image(f)]
        images = [f for f in files if _is_image(f)]
        if not images:
            empty.append(folder.name)
        samples += [Sample(f, f.relative_to(root).as_posix(), folder.name) for f in images]
    if others:
        raise _named(others, "non-image file(s)", root)
    if empty:
        raise _named(empty, "empty class folder(s)", root)
    return samples


def _csv_row(n: int, row: list[str], base: Path) -> tuple[Sample | None, str]:
    if len(row) != 2 or not row[0].strip() or not row[1].strip():
        return None, f"line {n}: expected 'path,label', got {','.join(row)!r}"
    given, label = row[0].strip(), row[1].strip()
    p = Path(given).expanduser()
    p = p if p.is_absolute() else base / p
    if not p.is_file():
        return None, f"line {n}: no such file {given}"
    if not _is_image(p):
        return None, f"line {n}: not an image file {given}"
    rel = os.path.relpath(p, base)
    return Sample(p, Path(rel).as_posix() if not rel.startswith("..") else str(p.resolve()), label), ""


def _csv(path: Path) -> list[Sample]:
    try:
        rows = list(csv.reader(path.read_text(encoding="utf-8-sig").splitlines()))
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise UsageError(f"cannot read CSV {path}: {e}") from None
    numbered = [(n, r) for n, r in enumerate(rows, 1) if any(c.strip() for c in r)]
    if numbered and [c.strip().lower() for c in numbered[0][1]] == ["path", "label"]:
        numbered = numbered[1:]
    if not numbered:
        raise UsageError(f"CSV {path} has no rows: expected 'path,label' lines")
    samples, bad = [], []
    for n, row in numbered:
        s, err = _csv_row(n, row, path.parent)
        samples += [s] if s else []
        bad += [err] if err else []
    if bad:
        more = f" (and {len(bad) - _SHOW} more)" if len(bad) > _SHOW else ""
        raise UsageError(f"{len(bad)} bad row(s) in CSV {path}{more}:\n  " + "\n  ".join(bad[:_SHOW]))
    return samples


def _check_headers(samples: list[Sample], where: Path) -> None:
    """Every image's header parses (cheap: Pillow reads no pixels here), so a text file named .jpg fails before
    any model runs."""
    from PIL import Image, UnidentifiedImageError

    bad = []
    for s in samples:
        try:
            with Image.open(s.path) as im:
                im.size  # noqa: B018 - header only
        except (OSError, UnidentifiedImageError, ValueError):
            bad.append(s.rel)
    if bad:
        raise _named(bad, "unreadable image(s)", where)


def _stable(s: Sample) -> str:
    return hashlib.sha256(s.rel.encode()).hexdigest()


def load_data(data: str | os.PathLike, limit: int | None = None) -> LabelledData:
    """The samples of an ImageFolder tree or a CSV, all checked; ``limit`` keeps N of them, chosen by the sha256
    of their relative paths (a stable, folder-order-free subset)."""
    src = Path(data).expanduser()
    if limit is not None and limit < 1:
        raise UsageError(f"--limit must be at least 1, got {limit}")
    if src.is_dir():
        samples, layout = _image_folder(src), "imagefolder"
    elif src.is_file() and src.suffix.lower() == ".csv":
        samples, layout = _csv(src), "csv"
    elif src.exists():
        raise UsageError(f"--data {src} is neither a folder nor a .csv file")
    else:
        raise UsageError(f"--data {src} does not exist")
    if limit is not None and limit < len(samples):
        samples = sorted(sorted(samples, key=_stable)[:limit], key=lambda s: s.rel)
    _check_headers(samples, src)
    return LabelledData(src.resolve(), layout, samples)
