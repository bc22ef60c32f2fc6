"""Each contract test runs three times: on an embedded Qdrant Edge shard under tmp_path,
on qdrant-client's local mode standing in for a Qdrant server, and on that local mode
behind Qdrant's REST API (`tests/fakes/qdrant_server.py`, the stand-in the multi-process
tests share), which these tests keep honest."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from qdrant_client import AsyncQdrantClient

from adapters.qdrant.edge import EdgeKnowledgeIndex
from adapters.qdrant.server import ServerKnowledgeIndex
from core.ports import Embedder
from tests.fakes.qdrant_server import FakeQdrant

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


@pytest.fixture(params=["edge", "server", "http"])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    async with contextlib.AsyncExitStack() as stack:
        client = None
        if request.param == "server":
            client = AsyncQdrantClient(location=":memory:")
        elif request.param == "http":
            qdrant = await stack.enter_async_context(FakeQdrant())
            client = AsyncQdrantClient(url=qdrant.base_url, check_compatibility=False)
        kind = "edge" if request.param == "edge" else "server"
        backend = Backend(kind=kind, path=tmp_path / "qdrant", client=client)
        yield backend
        await backend.close_all()
