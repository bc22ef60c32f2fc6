"""Whether an incoming activity's JSON has the shape botbuilder's `Activity` model reads,
without building the model (msrest's deserializer cost ~0.5 ms per request).

A body that conforms is one botbuilder would have accepted, read with its fields' JSON
types as they are (a string where the model wants a string, never a number it would
convert): the fast path (`TeamsAdapter.process`) then reads it as it is and the
references built from it (`references.reference_of`) are what botbuilder built. Anything
else takes botbuilder's path, which refuses what it cannot read with 400 as before. The
check errs only towards botbuilder's path; tests/adapters/teams/test_shape.py holds it to
msrest on many mutated bodies.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from botbuilder.schema import Activity
from msrest.serialization import Deserializer

# Values in free-form fields (`channelData`, `value`…) nested deeper than this take
# botbuilder's path: msrest walks them recursively and may run out of stack first.
MAX_DEPTH = 32
_LIST = re.compile(r"^\[(.+)\]$")
_DICT = re.compile(r"^\{(.+)\}$")

# Each model's fields by JSON key, from botbuilder's own schema.
_MODELS: dict[str, dict[str, str]] = {
    name: {spec["key"]: spec["type"] for spec in model._attribute_map.values()}
    for name, model in Activity._infer_class_models().items()
    if hasattr(model, "_attribute_map")
}


def conforms(body: Mapping[str, Any]) -> bool:
    """`body` reads as botbuilder's `Activity`, every field with its model's JSON type."""
    return _model(body, "Activity")


def _model(data: object, name: str) -> bool:
    fields = _MODELS[name]
    if not isinstance(data, dict):
        return False
    return all(
        _value(value, fields[key]) for key, value in data.items() if key in fields
    )


def _value(value: object, kind: str) -> bool:
    if value is None:
        return True
    if kind == "str":
        return isinstance(value, str)
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "object":
        return _shallow(value, MAX_DEPTH)
    if kind == "iso-8601":
        return isinstance(value, str) and _timestamp(value)
    if match := _LIST.match(kind):
        return isinstance(value, list) and all(_value(item, match[1]) for item in value)
    if match := _DICT.match(kind):
        return isinstance(value, dict) and all(_value(v, match[1]) for v in value.values())
    if kind in _MODELS:
        return _model(value, kind)
    return False  # a type this check does not know: botbuilder decides


def _timestamp(value: str) -> bool:
    try:
        Deserializer.deserialize_iso(value)
    except Exception:  # noqa: BLE001 - msrest raises several kinds for a bad date
        return False
    return True


def _shallow(value: object, depth: int) -> bool:
    if isinstance(value, dict):
        return depth > 0 and all(_shallow(v, depth - 1) for v in value.values())
    if isinstance(value, list):
        return depth > 0 and all(_shallow(v, depth - 1) for v in value)
    return True
