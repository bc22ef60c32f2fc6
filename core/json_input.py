"""JSON from the network, parsed and checked the same way by every adapter that reads a
body (the REST API, Slack, Teams): strict and bounded, so a hostile body is a 4xx, never
a 500. Here rather than in one adapter because adapters do not import each other.

`json.loads` recurses once per nesting level and raises `RecursionError` on a body of a
few thousand `[`; it also accepts lone surrogates (`"\\ud800"`), which no database can
store, and `NaN`. pydantic-core's parser (jiter) refuses all three: nesting deeper than
its limit (200), invalid UTF-8 and lone surrogates, and non-finite numbers.
"""

from __future__ import annotations

from typing import Annotated, Any

import pydantic_core
from pydantic import StringConstraints, ValidationError

# An id from outside, used as a key: PostgreSQL refuses NUL in text where SQLite keeps it,
# so an id with one is refused as malformed, the same on both (`core.text.storable` is
# for text, which is cleaned instead: an id changed would be another id).
Identifier = Annotated[str, StringConstraints(pattern=r"^[^\x00]*$")]


def parse_json(raw: bytes | str) -> Any:
    """The JSON value of `raw`; `ValueError` for anything that is not strict JSON."""
    return pydantic_core.from_json(raw, allow_inf_nan=False)


def problems(error: ValidationError) -> list[str]:
    """Each invalid field as `path: what is wrong`, never the value that was sent (it may
    be message text, and these lines are logged and shown)."""
    return [
        f"{'.'.join(str(p) for p in err['loc']) or 'body'}: {err['msg']}"
        for err in error.errors(include_input=False, include_url=False, include_context=False)
    ]
