"""The embedded default: a Qdrant Edge shard in the data directory, in this process."""

from __future__ import annotations

from pathlib import Path

import qdrant_edge as edge

from core.errors import ConfigurationError

SPARSE_VECTOR = "bm25"


class EdgeKnowledgeIndex:
    """Owns the shard; one process at a time may open a shard directory (Qdrant Edge
    takes a WAL lock), so several processes need a Qdrant server instead."""

    def __init__(self, shard: edge.EdgeShard, path: Path) -> None:
        self._shard = shard
        self._closed = False
        self.path = path

    @classmethod
    def open(cls, path: Path) -> EdgeKnowledgeIndex:
        path.mkdir(parents=True, exist_ok=True)
        try:
            if any(path.iterdir()):
                shard = edge.EdgeShard.load(str(path))
            else:
                config = edge.EdgeConfig(
                    sparse_vectors={SPARSE_VECTOR: edge.EdgeSparseVectorParams(modifier=edge.Modifier.Idf)}
                )
                shard = edge.EdgeShard.create(str(path), config)
        except Exception as e:
            raise ConfigurationError(
                [
                    f"cannot open the embedded Qdrant shard at {path}: {e} (is another "
                    "Switchboard process using this DATA_DIR? Several processes need QDRANT_URL)"
                ]
            ) from e
        return cls(shard, path)

    async def ping(self) -> None:
        self._shard.info()

    def describe(self) -> str:
        return f"embedded Qdrant Edge shard at {self.path}"

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            self._shard.flush()
            self._shard.close()
