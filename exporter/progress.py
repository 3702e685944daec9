"""Progress inside a step, for a console display: a loop that takes a while (calibration over the photos) says
``calibrate n/N`` as it goes. Nothing is shown, and nearly nothing done, when no one listens.

``for x in counted(images, "calibrate"): ...`` in a converter; ``with listening(fn): ...`` around an export,
where ``fn(what, n, total)`` is called before each item (n items done) and once after the last (total).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import TypeVar

__all__ = ["counted", "listening"]

T = TypeVar("T")
_listeners: list[Callable[[str, int, int], None]] = []


@contextlib.contextmanager
def listening(fn: Callable[[str, int, int], None]) -> Iterator[None]:
    _listeners.append(fn)
    try:
        yield
    finally:
        _listeners.remove(fn)


def counted(items: Sequence[T], what: str) -> Iterator[T]:
    """The items, in order, telling the listeners ``what`` n/N before each and N/N after the last."""
    total = len(items)
    for i, x in enumerate(items):
        _tell(what, i, total)
        yield x
    _tell(what, total, total)


def _tell(what: str, n: int, total: int) -> None:
    for fn in list(_listeners):
        fn(what, n, total)
