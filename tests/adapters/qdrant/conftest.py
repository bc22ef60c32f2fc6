"""Each contract test runs twice: on an embedded Qdrant Edge shard under tmp_path, and on
qdrant-client's local mode standing in for a Qdrant server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from qdrant_client import AsyncQdrantClient

from adapters.qdrant.edge import EdgeKnowledgeIndex
from adapters.qdrant.server import ServerKnowledgeIndex
from core.ports import Embedder

Index = EdgeKnowledgeIndex | ServerKnowledgeIndex


@dataclass
class Backend:
    """Opens indexes on one shard (edge) or one collection (server), as a restarted
    process would; `close()` before opening again, as only one opener may hold a shard."""

    kind: str
    path: Path
    client: AsyncQdrantClient | None = None
    opened: list[Index] = field(default_factory=list)

    def open(self, embedder: Embedder | None = None, dense_size: int | None = None) -> Index:
        index: Index
        if self.kind == "edge":
            index = EdgeKnowledgeIndex.open(self.path, embedder=embedder, dense_size=dense_size)
        else:
            assert self.client is not None
            index = ServerKnowledgeIndex(
                ":memory:", client=self.client, embedder=embedder, dense_size=dense_size
            )
        self.opened.append(index)
        return index

    async def close(self, index: Index) -> None:
        # The server's indexes share one client, closed at teardown.
        if isinstance(index, EdgeKnowledgeIndex):
            await index.aclose()

    async def close_all(self) -> None:
        for index in self.opened:
            await self.close(index)
        if self.client is not None:
            await self.client.close()


@pytest.fixture(params=["edge", "server"])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    client = AsyncQdrantClient(location=":memory:") if request.param == "server" else None
    backend = Backend(kind=request.param, path=tmp_path / "qdrant", client=client)
    yield backend
    await backend.close_all()
