"""BM25 sparse vectors from one encoder, shared by both backends.

Qdrant Edge's `Bm25` needs no model (Snowball stemmer, English stop words) and its token
ids follow Qdrant's `Qdrant/bm25` scheme, so the same vectors serve an Edge shard and a
server collection; both apply IDF at query time through the sparse vector's IDF
modifier, so documents carry term frequencies only.

Tuned on tests/fixtures/eval-* with two-fold cross-validation (benchmarks/tune_retrieval.py,
results in benchmarks/README.md): the code tokenizer, which also indexes the parts of
`CamelCase` and `snake_case` identifiers, and an expected passage length of 64 tokens
(Bm25's default of 256 is a whole web page's; a passage after stop words is nearer 60–80,
so long passages were not penalised enough). Repeating the heading path, or a separate
heading vector fused with the body, did not pay on any set.
"""

from __future__ import annotations

import qdrant_edge as edge

from core.knowledge import Chunk

SPARSE_VECTOR = "bm25"
DENSE_VECTOR = "dense"

# Stored with every passage. A passage written under another encoding reports its document
# as incomplete (payload.note_source), so the next `switchboard ingest` of the same paths
# writes it again with the current encoder instead of silently keeping the old vectors.
# Change it whenever `Bm25Encoder` or `indexed_text` changes what a document encodes to.
ENCODING = "bm25-code-64"


def indexed_text(chunk: Chunk) -> str:
    """What both vectors encode: the heading path too, so a passage is found by its
    section title ("Reset your VPN password") even when its body never repeats it."""
    return f"{chunk.heading_path}\n\n{chunk.text}"


def bm25_config() -> edge.Bm25Config:
    return edge.Bm25Config(tokenizer=edge.TokenizerType.Code, avg_len=64.0)


class Bm25Encoder:
    """Documents get BM25 term-frequency weights; queries one weight per unique term."""

    def __init__(self) -> None:
        self._model = edge.Bm25(bm25_config())

    def document(self, chunk: Chunk) -> edge.SparseVector:
        return self._model.embed_document(indexed_text(chunk))

    def query(self, text: str) -> edge.SparseVector:
        return self._model.embed_query(text)
