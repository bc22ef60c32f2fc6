"""The optional dense vector: embeddings from a configured `Embedder`, checked for size.

The size is fixed when the shard or collection is created, so a model whose vectors do
not fit is a configuration problem, reported before anything is written.
"""

from __future__ import annotations

from collections.abc import Sequence

from adapters.qdrant.sparse import indexed_text
from core.errors import ConfigurationError
from core.knowledge import Chunk
from core.ports import Embedder

EMBED_BATCH = 256


def require_size(embedder: Embedder | None, dense_size: int | None) -> int | None:
    """The dense size to configure, or None without an embedder."""
    if embedder is None:
        return None
    if dense_size is None or dense_size < 1:
        raise ConfigurationError(
            [f"the embedding model {embedder.name!r} needs its vector size (dense_size)"]
        )
    return dense_size


def rebuild_hint(where: str) -> str:
    return (
        f"{where} was built without a dense vector of this size: it must be rebuilt for "
        "the embedding model (delete it, then run `switchboard ingest` again)"
    )


async def embed_chunks(embedder: Embedder, chunks: Sequence[Chunk], size: int) -> list[list[float]]:
    vectors: list[list[float]] = []
    for start in range(0, len(chunks), EMBED_BATCH):
        batch = chunks[start : start + EMBED_BATCH]
        vectors += await embedder.embed([indexed_text(c) for c in batch])
    return [_checked(v, embedder, size) for v in vectors]


async def embed_query(embedder: Embedder, text: str, size: int) -> list[float]:
    [vector] = await embedder.embed([text])
    return _checked(vector, embedder, size)


def _checked(vector: list[float], embedder: Embedder, size: int) -> list[float]:
    if len(vector) != size:
        raise ConfigurationError(
            [f"the embedding model {embedder.name!r} returned {len(vector)} dimensions, "
             f"the knowledge index expects {size}"]
        )
    return vector
