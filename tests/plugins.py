"""Dropping one module into a registry package's path for a test, as a new format or runtime would be added."""

from __future__ import annotations

import textwrap


def drop_in(package, filename: str, source: str, tmp_path, monkeypatch) -> str:
    """Write ``filename`` into a new folder appended to ``package.__path__`` with a copied registry (undone by
    ``monkeypatch``); returns the module's name (pop it from ``sys.modules`` after the test)."""
    folder = tmp_path / "plugin"
    folder.mkdir()
    (folder / filename).write_text(textwrap.dedent(source))
    monkeypatch.setattr(package, "__path__", [*package.__path__, str(folder)])
    monkeypatch.setattr(package, "_REGISTRY", dict(package._REGISTRY))
    monkeypatch.setattr(package, "_scanned", list(package._scanned))
    return f"{package.__name__}.{filename.removesuffix('.py')}"
