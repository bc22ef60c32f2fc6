"""Knowledge passages, who may read them, and which of them an answer cited."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from core.messages import Citation

_MARKER = re.compile(r"\[(\d{1,3})\]")


@dataclass(frozen=True, kw_only=True, slots=True)
class Passage:
    id: str
    title: str
    text: str
    url: str | None = None
    score: float = 0.0


@dataclass(frozen=True, kw_only=True, slots=True)
class Audience:
    """Who will see an answer. A person (DM, web, terminal) may see what they may see;
    a channel only what was allowed for that channel or is public, whoever asked."""

    kind: Literal["person", "channel"]
    principals: frozenset[str]


def cited(text: str, passages: Sequence[Passage], *, snippet_chars: int = 240) -> tuple[Citation, ...]:
    """Citations for the passages the answer marks as `[n]` (1-based), in number order;
    passages it did not cite are dropped."""
    used = sorted({int(n) for n in _MARKER.findall(text)})
    return tuple(
        Citation(
            index=n,
            title=passages[n - 1].title,
            url=passages[n - 1].url,
            snippet=passages[n - 1].text[:snippet_chars],
        )
        for n in used
        if 1 <= n <= len(passages)
    )
