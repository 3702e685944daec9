"""The ONE table of expected failures. Each entry is a strict xfail with its reason: if the case starts
passing, the test suite fails until the entry is removed."""

from __future__ import annotations

import pytest

# (test name, parameter) -> reason
KNOWN: dict[tuple[str, str], str] = {
    ("test_spec_is_complete", "repvgg_b2g2"): "RepVGG-B2g2 exists in the official code but no paper table or README "
                                              "publishes its top-1",
    ("test_spec_is_complete", "repvgg_b3g2"): "RepVGG-B3g2 exists in the official code but no paper table or README "
                                              "publishes its top-1",
}


def params(test: str, values):
    """Parametrize values for ``test``, marking the known failures as strict xfails."""
    out = []
    for v in values:
        reason = KNOWN.get((test, v))
        out.append(pytest.param(v, marks=pytest.mark.xfail(strict=True, reason=reason)) if reason else v)
    return out
