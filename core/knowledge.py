"""Knowledge passages, who may read them, and which of them an answer cited."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from core.messages import Citation

_MARKER = re.compile(r"\[(\d{1,3})\]")
# How much of a passage's opening, whitespace aside, an answer repeats to count as quoting it.
_QUOTED_OPENING = 80


@dataclass(frozen=True, kw_only=True, slots=True)
class Passage:
    id: str
    title: str
    text: str
    url: str | None = None
    score: float = 0.0
    source: str | None = None  # the document's key in the index (`Chunk.source`)


@dataclass(frozen=True, kw_only=True, slots=True)
class Audience:
    """Who will see an answer. A person (DM, web, terminal) may see what they may see;
    a channel only what was allowed for that channel or is public, whoever asked.

    `principals`: for a person, their channel-scoped id, verified email and group names;
    for a channel, its id written `channel:tenant:conversation` (`slack:T1:C2`)."""

    kind: Literal["person", "channel"]
    principals: frozenset[str]


@dataclass(frozen=True, kw_only=True, slots=True)
class Access:
    """Who may read a document's passages: everyone, or only the people (channel-scoped
    id or email), groups and channels named. A person matches `users` or `groups`; a
    channel matches `channels` only."""

    public: bool = True
    users: frozenset[str] = frozenset()
    groups: frozenset[str] = frozenset()
    channels: frozenset[str] = frozenset()

    def allows(self, audience: Audience) -> bool:
        """The rule every index applies as a filter, stated once for tests and fakes."""
        if self.public:
            return True
        if audience.kind == "channel":
            return bool(self.channels & audience.principals)
        return bool((self.users | self.groups) & audience.principals)


@dataclass(frozen=True, kw_only=True, slots=True)
class Chunk:
    """One passage of one document as it is indexed.

    `id` is stable for (source, position), so re-ingesting a changed document overwrites
    its passages; `document_hash` covers the document's text, metadata and access, so an
    unchanged document is skipped."""

    id: str
    source: str
    position: int
    title: str
    headings: tuple[str, ...]
    text: str
    url: str | None
    document_hash: str
    access: Access

    @property
    def heading_path(self) -> str:
        """"Title › Section › Subsection": how the passage is shown and cited."""
        return " › ".join((self.title, *self.headings))


class PassageBook:
    """The passages one answer may cite, numbered as the model sees them: those found
    before the model runs, then those a `search_knowledge` call adds (kept once each)."""

    def __init__(self, passages: Sequence[Passage] = ()) -> None:
        self._passages = list(passages)

    @property
    def passages(self) -> tuple[Passage, ...]:
        return tuple(self._passages)

    def add(self, passages: Sequence[Passage]) -> list[tuple[int, Passage]]:
        """Number `passages` (1-based), keeping the number a passage already has."""
        numbered = []
        for passage in passages:
            known = next((i for i, p in enumerate(self._passages) if p.id == passage.id), None)
            if known is None:
                self._passages.append(passage)
                known = len(self._passages) - 1
            numbered.append((known + 1, self._passages[known]))
        return numbered


def cited(text: str, passages: Sequence[Passage], *, snippet_chars: int = 240) -> tuple[Citation, ...]:
    """Citations for the passages the answer marks as `[n]` (1-based), in number order;
    passages it did not cite are dropped.

    A snippet previews a source under the answer. A passage the answer quotes (its opening
    is in the text, as the offline responder shows passages) gets none: the channels would
    otherwise show it a second time under Sources."""
    used = sorted({int(n) for n in _MARKER.findall(text)})
    flat = _flat(text)

    def citation(n: int, passage: Passage) -> Citation:
        snippet = None if _quotes(flat, passage) else passage.text[:snippet_chars]
        return Citation(
            index=n, title=passage.title, url=passage.url, snippet=snippet, source=passage.source
        )

    return tuple(citation(n, passages[n - 1]) for n in used if 1 <= n <= len(passages))


def _quotes(flat_text: str, passage: Passage) -> bool:
    opening = _flat(passage.text)[:_QUOTED_OPENING]
    return bool(opening) and opening in flat_text


def _flat(text: str) -> str:
    return " ".join(text.split())
