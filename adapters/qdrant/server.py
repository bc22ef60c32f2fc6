"""Scale-out: a Qdrant server or cluster through qdrant-client.

The collection is created on first use (a constructor cannot await), with the same
vectors, payload indexes and queries as the embedded shard. `prepare()` does that
eagerly, so a process can fail at start-up rather than on its first question.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any, assert_never

from qdrant_client import AsyncQdrantClient, models
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

from adapters.qdrant import dense as dense_vectors
from adapters.qdrant.filters import AnyOf, Condition, Equals, access_conditions, source_condition
from adapters.qdrant.payload import (
    KEYWORD_INDEXES,
    SOURCE_FIELDS,
    in_order,
    note_source,
    to_passage,
    to_payload,
)
from adapters.qdrant.plan import Mode, SearchPlan, candidates, plan_search
from adapters.qdrant.sparse import DENSE_VECTOR, SPARSE_VECTOR, Bm25Encoder
from adapters.qdrant.static import STATIC_SIZE, STATIC_VECTOR, WordLlamaEmbedder, static_embedder
from core.errors import ConfigurationError, StorageError
from core.knowledge import Audience, Chunk, Passage
from core.ports import Embedder

log = logging.getLogger(__name__)

DEFAULT_COLLECTION = "switchboard"
SCROLL_PAGE = 1024
# Network and server failures; translated into StorageError at this boundary.
_FAILURES = (UnexpectedResponse, ResponseHandlingException, ConnectionError, TimeoutError)


class ServerKnowledgeIndex:
    """`client` replaces the one built from `url` (tests pass qdrant-client's local mode)."""

    def __init__(
        self,
        url: str,
        api_key: str | None = None,
        *,
        timeout: float = 5.0,
        collection: str = DEFAULT_COLLECTION,
        embedder: Embedder | None = None,
        dense_size: int | None = None,
        client: AsyncQdrantClient | None = None,
    ) -> None:
        self._url = url
        self._client = client or AsyncQdrantClient(url=url, api_key=api_key, timeout=int(timeout))
        self._collection = collection
        self._encoder = Bm25Encoder()
        self._embedder = embedder
        self._dense_size = dense_vectors.require_size(embedder, dense_size)
        self._dense_vector = DENSE_VECTOR
        # Without a model: the bundled static embeddings, if the collection has them
        # (decided in `prepare()`; one created here does).
        self._static = static_embedder() if embedder is None else None
        self._ready = False
        self._lock = asyncio.Lock()

    async def prepare(self) -> None:
        """Create the collection and its payload indexes if missing; check its vectors."""
        if self._ready:
            return
        async with self._lock:
            if self._ready:
                return
            try:
                if await self._client.collection_exists(self._collection):
                    await self._check_dense()
                    await self._check_static()
                else:
                    self._use_static()
                    await self._create()
            except _FAILURES as e:
                raise StorageError(f"{self.describe()} is unavailable: {e}") from e
            self._ready = True

    async def _create(self) -> None:
        vectors = {}
        if self._dense_size is not None:
            cosine = models.Distance.COSINE
            vectors[self._dense_vector] = models.VectorParams(
                size=self._dense_size, distance=cosine
            )
        idf = models.SparseVectorParams(modifier=models.Modifier.IDF)
        await self._client.create_collection(
            self._collection, vectors_config=vectors, sparse_vectors_config={SPARSE_VECTOR: idf}
        )
        for field in KEYWORD_INDEXES:
            await self._client.create_payload_index(
                self._collection, field, field_schema=models.PayloadSchemaType.KEYWORD
            )

    async def _check_dense(self) -> None:
        if self._dense_size is None:
            return
        info = await self._client.get_collection(self._collection)
        vectors = info.config.params.vectors
        params = vectors.get(DENSE_VECTOR) if isinstance(vectors, dict) else None
        if params is None or params.size != self._dense_size:
            where = f"the Qdrant collection {self._collection!r} at {self._url}"
            raise ConfigurationError([dense_vectors.rebuild_hint(where)])

    @property
    def dense_model(self) -> str | None:
        """The model behind the dense vector (the bundled static one by default), or None
        for BM25 alone."""
        return self._embedder.name if self._embedder is not None else None

    def _use_static(self, static: WordLlamaEmbedder | None = None) -> None:
        if (static := static or self._static) is not None:
            self._embedder, self._dense_size = static, STATIC_SIZE
            self._dense_vector = STATIC_VECTOR

    async def _check_static(self) -> None:
        if self._static is None:
            return
        info = await self._client.get_collection(self._collection)
        vectors = info.config.params.vectors
        params = vectors.get(STATIC_VECTOR) if isinstance(vectors, dict) else None
        if params is not None and params.size == STATIC_SIZE:
            self._use_static()
        else:
            log.warning(
                "the Qdrant collection %r was created without the bundled static embeddings: "
                "search uses BM25 alone until it is rebuilt (delete the collection, run "
                "`switchboard ingest` again)", self._collection,
            )

    # -- KnowledgeStore ------------------------------------------------------------------

    async def upsert(self, chunks: Sequence[Chunk]) -> None:
        if not chunks:
            return
        await self.prepare()
        dense = None
        if self._embedder is not None and self._dense_size is not None:
            dense = await dense_vectors.embed_chunks(self._embedder, chunks, self._dense_size)
        points = []
        for i, chunk in enumerate(chunks):
            sparse = self._encoder.document(chunk)
            vector: dict[str, Any] = {
                SPARSE_VECTOR: models.SparseVector(indices=sparse.indices, values=sparse.values)
            }
            if dense is not None:
                vector[self._dense_vector] = dense[i]
            points.append(models.PointStruct(id=chunk.id, vector=vector, payload=to_payload(chunk)))
        await self._call(self._client.upsert(self._collection, points=points, wait=True))

    async def delete_source(self, source: str) -> int:
        await self.prepare()
        where = models.Filter(must=[_condition(source_condition(source))])
        found = await self._call(
            self._client.count(self._collection, count_filter=where, exact=True)
        )
        if found.count:
            selector = models.FilterSelector(filter=where)
            await self._call(
                self._client.delete(self._collection, points_selector=selector, wait=True)
            )
        return int(found.count)

    async def sources(self) -> dict[str, str]:
        await self.prepare()
        found: dict[str, str] = {}
        offset: Any = None
        while True:
            records, offset = await self._call(
                self._client.scroll(
                    self._collection, limit=SCROLL_PAGE, offset=offset,
                    with_payload=SOURCE_FIELDS, with_vectors=False,
                )
            )
            for record in records:
                note_source(found, record.payload or {})
            if offset is None:
                return found

    async def count(self) -> int:
        await self.prepare()
        found = await self._call(self._client.count(self._collection, exact=True))
        return int(found.count)

    # -- DocumentReader ------------------------------------------------------------------

    async def passages_of(self, source: str, *, audience: Audience, limit: int) -> list[Passage]:
        # Only reads: the web role reads here and must not create the collection (the
        # worker does, with the embedder's vectors).
        if not self._ready and not await self._call(
            self._client.collection_exists(self._collection)
        ):
            return []
        where = models.Filter(
            must=[_condition(source_condition(source))],
            should=[_condition(c) for c in access_conditions(audience)],
        )
        found: list[tuple[object, dict[str, Any] | None]] = []
        offset: Any = None
        while True:  # every page: points come in id order, not the document's
            records, offset = await self._call(
                self._client.scroll(
                    self._collection, scroll_filter=where, limit=SCROLL_PAGE, offset=offset,
                    with_payload=True, with_vectors=False,
                )
            )
            found += [(record.id, record.payload) for record in records]
            if offset is None:
                return in_order(found)[:limit]

    # -- Retriever -----------------------------------------------------------------------

    async def search(
        self, query: str, *, audience: Audience, limit: int, mode: Mode = "auto"
    ) -> list[Passage]:
        """`mode`: "auto" is hybrid with an embedder, BM25 without; "bm25" and "dense"
        search one retriever alone (for evaluation)."""
        await self.prepare()
        plan = await plan_search(
            query, limit=limit, mode=mode, encoder=self._encoder,
            embedder=self._embedder, dense_size=self._dense_size,
            dense_vector=self._dense_vector,
        )
        where = models.Filter(should=[_condition(c) for c in access_conditions(audience)])
        arguments = _query_arguments(plan, where)
        if arguments is None:
            return []
        requests = [models.QueryRequest(limit=plan.limit, filter=where, with_payload=True,
                                        **arguments)]
        if plan.needs_word_match:  # in the same round trip: does BM25 find anything?
            requests.append(models.QueryRequest(query=_sparse(plan), using=SPARSE_VECTOR,
                                                limit=1, filter=where, with_payload=False))
        found, *word_match = await self._call(
            self._client.query_batch_points(self._collection, requests=requests)
        )
        if word_match and not word_match[0].points:
            return []
        return [to_passage(p.id, p.payload, p.score) for p in found.points]

    # -- Maintenance ---------------------------------------------------------------------

    async def optimize(self) -> bool:
        """A server optimizes by itself; here for the same interface as the shard."""
        return False

    async def ping(self) -> None:
        await self._client.get_collections()

    def describe(self) -> str:
        return f"Qdrant server at {self._url}"

    async def aclose(self) -> None:
        await self._client.close()

    async def _call(self, pending: Any) -> Any:
        try:
            return await pending
        except _FAILURES as e:
            raise StorageError(f"{self.describe()} failed: {e}") from e


def _condition(condition: Condition) -> models.FieldCondition:
    match condition:
        case Equals(field=field, value=value):
            return models.FieldCondition(key=field, match=models.MatchValue(value=value))
        case AnyOf(field=field, values=values):
            return models.FieldCondition(key=field, match=models.MatchAny(any=list(values)))
        case _:
            assert_never(condition)


def _sparse(plan: SearchPlan) -> models.SparseVector | None:
    if plan.sparse is None:
        return None
    return models.SparseVector(indices=plan.sparse.indices, values=plan.sparse.values)


def _query_arguments(plan: SearchPlan, where: models.Filter) -> dict[str, Any] | None:
    sparse = _sparse(plan)
    if sparse is not None and plan.dense is not None:
        n = candidates(plan.limit)
        return {
            "prefetch": [
                models.Prefetch(query=sparse, using=SPARSE_VECTOR, limit=n, filter=where),
                models.Prefetch(query=plan.dense, using=plan.dense_vector, limit=n,
                                filter=where),
            ],
            "query": models.FusionQuery(fusion=models.Fusion.DBSF),
        }
    if sparse is not None:
        return {"query": sparse, "using": SPARSE_VECTOR}
    if plan.dense is not None:
        return {"query": plan.dense, "using": plan.dense_vector}
    return None
