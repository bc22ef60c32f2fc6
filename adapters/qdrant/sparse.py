"""BM25 sparse vectors from one encoder, shared by both backends.

Qdrant Edge's `Bm25` needs no model (Snowball stemmer, English stop words) and its token
ids follow Qdrant's `Qdrant/bm25` scheme, so the same vectors serve an Edge shard and a
server collection; both apply IDF at query time through the sparse vector's IDF
modifier, so documents carry term frequencies only.
"""

from __future__ import annotations

import qdrant_edge as edge

from core.knowledge import Chunk

SPARSE_VECTOR = "bm25"
DENSE_VECTOR = "dense"


def indexed_text(chunk: Chunk) -> str:
    """What both vectors encode: the heading path too, so a passage is found by its
    section title ("Reset your VPN password") even when its body never repeats it."""
    return f"{chunk.heading_path}\n\n{chunk.text}"


class Bm25Encoder:
    """Documents get BM25 term-frequency weights; queries one weight per unique term."""

    def __init__(self) -> None:
        self._model = edge.Bm25()

    def document(self, chunk: Chunk) -> edge.SparseVector:
        return self._model.embed_document(indexed_text(chunk))

    def query(self, text: str) -> edge.SparseVector:
        return self._model.embed_query(text)
