"""The access rule of `core.knowledge.Access.allows`, as backend-neutral conditions.

A passage matches when ANY condition holds ("should"): it is public, or one of its
allow-lists shares a principal with the audience. A person is matched against users and
groups; a channel only against channels, whoever asked in it. Each backend translates
these into its own structured filter types; no filter is ever built from strings.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import assert_never

from adapters.qdrant.payload import (
    ALLOW_CHANNELS,
    ALLOW_GROUPS,
    ALLOW_USERS,
    PUBLIC,
    SOURCE,
    VISIBILITY,
)
from core.knowledge import Audience


@dataclass(frozen=True, kw_only=True, slots=True)
class Equals:
    field: str
    value: str


@dataclass(frozen=True, kw_only=True, slots=True)
class AnyOf:
    """The field (a keyword list) contains at least one of `values`."""

    field: str
    values: tuple[str, ...]


Condition = Equals | AnyOf


def access_conditions(audience: Audience) -> list[Condition]:
    """Conditions of which at least one must hold for `audience` to read a passage."""
    match audience.kind:
        case "person":
            fields: tuple[str, ...] = (ALLOW_USERS, ALLOW_GROUPS)
        case "channel":
            fields = (ALLOW_CHANNELS,)
        case _:
            assert_never(audience.kind)
    conditions: list[Condition] = [Equals(field=VISIBILITY, value=PUBLIC)]
    principals = tuple(sorted(p for p in audience.principals if p))
    if principals:
        conditions += [AnyOf(field=f, values=principals) for f in fields]
    return conditions


def source_condition(source: str) -> Condition:
    return Equals(field=SOURCE, value=source)
