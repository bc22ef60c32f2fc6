"""What one search asks of the index, decided once for both backends.

Hybrid search is one query: a BM25 prefetch and a dense prefetch, each filtered by
access, fused by distribution-based score fusion (DBSF: each list's scores normalised by
its own mean ± 3 standard deviations, then summed). Each backend only translates a `SearchPlan`
into its own request types, so both rank identically (the contract tests check it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import qdrant_edge as edge

from adapters.qdrant.dense import embed_query
from adapters.qdrant.sparse import DENSE_VECTOR, Bm25Encoder
from adapters.qdrant.static import STATIC_VECTOR
from core.errors import ConfigurationError
from core.ports import Embedder

Mode = Literal["auto", "hybrid", "bm25", "dense"]

# Why DBSF, not reciprocal rank fusion (benchmarks/README.md, "Fusion"): on the evaluation
# sets, RRF at k=60 ranked below the dense model alone (eval-debian-faq: 0.716 against
# 0.734 with all-MiniLM-L6-v2), and the RRF weights and k that won on one set lost on
# another. DBSF has no parameter to tune and beat the better single retriever on every set,
# with a strong dense model and with a weak one: a score far above a list's own spread
# counts, a rank alone does not, so the weaker list's mediocre hits cannot outvote the
# stronger list's clear ones.


def candidates(limit: int) -> int:
    """How many passages each prefetch hands to fusion. DBSF normalises each list by its
    own mean and spread, which a short list estimates badly: on eval-debian-faq nDCG@10
    rose from 0.60 at 20 candidates to 0.64 at 100 and no further at 200."""
    return max(limit * 4, 100)


@dataclass(frozen=True, kw_only=True, slots=True)
class SearchPlan:
    sparse: edge.SparseVector | None
    dense: list[float] | None
    limit: int
    dense_vector: str = DENSE_VECTOR  # the named vector `dense` searches
    # Hybrid with the bundled static vectors: nothing is found unless BM25 finds something.
    # Nearest neighbours always exist, and for a question that shares no word with any
    # passage its reader may see ("what is the capital of France?" against an IT handbook)
    # a static model's nearest are noise that an offline answer would quote as if relevant.
    # A configured model is trusted to match meaning without shared words.
    needs_word_match: bool = False


async def plan_search(
    query: str,
    *,
    limit: int,
    mode: Mode,
    encoder: Bm25Encoder,
    embedder: Embedder | None,
    dense_size: int | None,
    dense_vector: str = DENSE_VECTOR,
) -> SearchPlan:
    if mode == "auto":
        mode = "hybrid" if embedder is not None else "bm25"
    if mode in ("hybrid", "dense") and (embedder is None or dense_size is None):
        raise ConfigurationError([f"{mode} search needs an embedding model"])
    sparse = encoder.query(query) if mode in ("hybrid", "bm25") else None
    if sparse is not None and not sparse.indices:
        # Only stop words: nothing to find. A dense model would still return its nearest
        # passages, which "the and of" makes arbitrary, so hybrid finds nothing too.
        return SearchPlan(sparse=None, dense=None, limit=limit, dense_vector=dense_vector)
    dense = None
    if mode in ("hybrid", "dense") and embedder is not None and dense_size is not None:
        dense = await embed_query(embedder, query, dense_size)
    return SearchPlan(
        sparse=sparse, dense=dense, limit=limit, dense_vector=dense_vector,
        needs_word_match=mode == "hybrid" and dense_vector == STATIC_VECTOR,
    )
