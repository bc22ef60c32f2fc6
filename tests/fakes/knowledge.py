"""In-memory knowledge: a `Retriever` of fixed passages, each public or allowed to named
principals, and a `KnowledgeStore` that ingestion writes to and tests search."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from core.knowledge import Audience, Chunk, Passage


@dataclass(frozen=True, kw_only=True)
class Document:
    passage: Passage
    allowed: frozenset[str] | None = None  # None: public


class InMemoryRetriever:
    def __init__(self, documents: list[Document]) -> None:
        self._documents = documents
        self.queries: list[tuple[str, Audience]] = []

    async def search(self, query: str, *, audience: Audience, limit: int) -> list[Passage]:
        self.queries.append((query, audience))
        visible = [
            d.passage for d in self._documents
            if d.allowed is None or d.allowed & audience.principals
        ]
        return visible[:limit]


class InMemoryKnowledgeStore:
    """`KnowledgeStore` over a dict of passages, with a naive `search` (shared words between
    the query and a passage's heading path and text, filtered by `Access.allows`) so tests
    can ingest documents and retrieve them without Qdrant."""

    def __init__(self) -> None:
        self.chunks: dict[str, Chunk] = {}
        self.batches: list[int] = []  # size of each upsert, to check batching

    async def upsert(self, chunks: Sequence[Chunk]) -> None:
        self.batches.append(len(chunks))
        self.chunks.update((c.id, c) for c in chunks)

    async def delete_source(self, source: str) -> int:
        doomed = [id_ for id_, c in self.chunks.items() if c.source == source]
        for id_ in doomed:
            del self.chunks[id_]
        return len(doomed)

    async def sources(self) -> dict[str, str]:
        """As the real indexes list them: the hash of each document's first passage, ""
        for a document whose first passage is missing (a write cut short)."""
        found: dict[str, str] = {}
        for c in self.chunks.values():
            if c.position == 0:
                found[c.source] = c.document_hash
            else:
                found.setdefault(c.source, "")
        return found

    async def count(self) -> int:
        return len(self.chunks)

    def of(self, source: str) -> list[Chunk]:
        """One document's passages in order."""
        return sorted(
            (c for c in self.chunks.values() if c.source == source), key=lambda c: c.position
        )

    async def search(self, query: str, *, audience: Audience, limit: int) -> list[Passage]:
        terms = _terms(query)
        scored = []
        for c in self.chunks.values():
            score = len(terms & _terms(f"{c.heading_path} {c.text}"))
            if score and c.access.allows(audience):
                scored.append((score, c))
        scored.sort(key=lambda pair: (-pair[0], pair[1].source, pair[1].position))
        return [_passage(c, float(score)) for score, c in scored[:limit]]

    async def passages_of(self, source: str, *, audience: Audience, limit: int) -> list[Passage]:
        return [_passage(c) for c in self.of(source) if c.access.allows(audience)][:limit]


def _passage(c: Chunk, score: float = 0.0) -> Passage:
    return Passage(
        id=c.id, title=c.heading_path, text=c.text, url=c.url, score=score, source=c.source
    )


def _terms(text: str) -> set[str]:
    return set(re.findall(r"\w+", text.lower()))
