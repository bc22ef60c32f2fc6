"""YAML front matter of a Markdown file: title, url and who may read it.

A file that cannot say clearly who may read it is refused rather than guessed at: a typo in
`visibility` must not publish a restricted page."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, cast

import yaml

from adapters.ingest.document import Unreadable
from core.knowledge import Access

_FRONT_MATTER = re.compile(r"\A---[ \t]*\r?\n(.*?\r?\n)?(?:---|\.\.\.)[ \t]*(?:\r?\n|\Z)", re.S)
_ACCESS_KEYS = ("visibility", "allow_users", "allow_groups", "allow_channels")

Visibility = Literal["public", "restricted"]


@dataclass(frozen=True, kw_only=True, slots=True)
class FrontMatter:
    title: str | None = None
    url: str | None = None
    access: Access | None = None


def split_front_matter(text: str) -> tuple[FrontMatter, str]:
    """The front matter (empty when there is none) and the Markdown body after it."""
    match = _FRONT_MATTER.match(text)
    if match is None:
        return FrontMatter(), text
    try:
        data = yaml.safe_load(match.group(1) or "")
    except yaml.YAMLError as e:
        raise _invalid(f"invalid front matter: {e}".splitlines()[0]) from e
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise _invalid("invalid front matter: not a mapping")
    fields = cast(Mapping[str, object], data)
    front = FrontMatter(
        title=_text(fields, "title"),
        url=_text(fields, "url"),
        access=_access(fields) if any(key in fields for key in _ACCESS_KEYS) else None,
    )
    return front, text[match.end():]


def make_access(
    visibility: Visibility | None,
    *,
    users: frozenset[str] = frozenset(),
    groups: frozenset[str] = frozenset(),
    channels: frozenset[str] = frozenset(),
) -> Access:
    """Allow lists without a stated visibility mean restricted. Allow lists with
    "public" are refused (ValueError): naming who may read a document and publishing it to
    everyone at once is never what was meant, and guessing either way could leak."""
    named = bool(users or groups or channels)
    if visibility is None:
        visibility = "restricted" if named else "public"
    elif visibility == "public" and named:
        raise ValueError("visibility public with allow lists: say restricted, or drop them")
    return Access(
        public=visibility == "public", users=users, groups=groups, channels=channels
    )


def _access(fields: Mapping[str, object]) -> Access:
    visibility = fields.get("visibility")
    if visibility is not None and visibility not in ("public", "restricted"):
        raise _invalid(f"invalid front matter: visibility {visibility!r}")
    try:
        return make_access(
            visibility,
            users=_names(fields, "allow_users"),
            groups=_names(fields, "allow_groups"),
            channels=_names(fields, "allow_channels"),
        )
    except ValueError as e:
        raise _invalid(f"invalid front matter: {e}") from e


def _text(fields: Mapping[str, object], key: str) -> str | None:
    value = fields.get(key)
    if value is None:
        return None
    if not isinstance(value, str | int | float):
        raise _invalid(f"invalid front matter: {key} is not text")
    return str(value).strip() or None


def _names(fields: Mapping[str, object], key: str) -> frozenset[str]:
    value = fields.get(key)
    if value is None:
        return frozenset()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str | int) for v in value):
        raise _invalid(f"invalid front matter: {key} is not a list of names")
    return frozenset(str(v).strip() for v in value if str(v).strip())


def _invalid(reason: str) -> Unreadable:
    return Unreadable(reason, kind="invalid front matter")
