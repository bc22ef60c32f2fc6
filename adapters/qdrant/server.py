"""Scale-out: a Qdrant server or cluster through qdrant-client."""

from __future__ import annotations

from qdrant_client import AsyncQdrantClient


class ServerKnowledgeIndex:
    def __init__(self, url: str, api_key: str | None, *, timeout: float = 5.0) -> None:
        self._url = url
        self._client = AsyncQdrantClient(url=url, api_key=api_key, timeout=int(timeout))

    async def ping(self) -> None:
        await self._client.get_collections()

    def describe(self) -> str:
        return f"Qdrant server at {self._url}"

    async def aclose(self) -> None:
        await self._client.close()
