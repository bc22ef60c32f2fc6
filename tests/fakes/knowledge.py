"""An in-memory `Retriever`: fixed passages, each public or allowed to named principals."""

from __future__ import annotations

from dataclasses import dataclass

from core.knowledge import Audience, Passage


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
