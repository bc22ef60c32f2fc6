"""What the ingress fuzz tests generate (hypothesis): JSON of any shape, known-good bodies
with fields replaced or dropped, raw bytes, and header values; how much of it; and the
check every bad-input test makes of the log.

Every test runs the same bounded, repeatable search: `derandomize` (the same examples on
every run and machine), no example database (nothing written into the repository), and
few enough examples to finish in seconds on a busy 2-CPU runner.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

FUZZ = settings(
    max_examples=60,
    derandomize=True,
    database=None,
    deadline=None,
    # One server serves every example of a test (starting one per example would cost
    # more than the examples); its state between examples is part of what is tested.
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# Strings no database stores as they are, or that text handling trips over.
NASTY = ("\x00", "a\x00b", "\ud800", "x\udfff", "\u2028", "\ufeff", "😀", "<at>x</at>", "1e400")
_leaves = (
    st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20)
    | st.sampled_from(NASTY)
)
json_values = st.recursive(
    _leaves,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner,
                                                                  max_size=4),
    max_leaves=12,
)
json_objects = st.dictionaries(st.text(max_size=12), json_values, max_size=6)
raw_bodies = st.binary(max_size=300) | st.integers(min_value=150, max_value=5000).map(
    lambda depth: b"[" * depth + b"]" * depth  # nested deeper than a parser may recurse
)
# What an HTTP client can put in a header: no control characters, Latin-1 at most.
header_text = st.text(
    st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"),
    max_size=40,
)
content_types = st.sampled_from([
    "application/json", "application/json; charset=utf-8",
    "application/x-www-form-urlencoded", "text/plain", "multipart/form-data",
]) | header_text


@st.composite
def mutated(draw: st.DrawFn, good: Mapping[str, Any], *paths: tuple[str, ...]) -> Any:
    """`good` (a known-good body) with a few of its fields at `paths` (and its top-level
    fields) replaced by any JSON value, or dropped."""
    body = copy.deepcopy(dict(good))
    choices = [*paths, *((key,) for key in good)]
    for path in draw(st.lists(st.sampled_from(choices), min_size=1, max_size=3)):
        parent = body
        for key in path[:-1]:
            parent = parent.get(key) if isinstance(parent, dict) else None
        if not isinstance(parent, dict):
            continue
        if draw(st.booleans()):
            parent[path[-1]] = draw(json_values)
        else:
            parent.pop(path[-1], None)
    return body


def no_traceback(caplog: pytest.LogCaptureFixture) -> None:
    """Nothing logged with a traceback or as an error: one bad request, one plain line."""
    bad = [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    assert not bad, [f"{r.name}: {r.getMessage()}" for r in bad]
