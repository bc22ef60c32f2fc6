"""The embedded default: a Qdrant Edge shard in the data directory, in this process.

Edge is synchronous. Queries take well under a few milliseconds (benchmarks/README.md)
and are called directly; bulk writes, listing and `optimize()` run in a worker thread so
the event loop keeps serving. Edge never optimizes by itself: new points stay in
appendable segments until `optimize()` builds the indexes, which `switchboard ingest`
should call once after a run that changed anything (never per request).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar, assert_never

import qdrant_edge as edge

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
from adapters.qdrant.static import STATIC_SIZE, STATIC_VECTOR, static_embedder
from core.errors import ConfigurationError, StorageError
from core.knowledge import Audience, Chunk, Passage
from core.ports import Embedder

log = logging.getLogger(__name__)
T = TypeVar("T")

SCROLL_PAGE = 1024


class EdgeKnowledgeIndex:
    """Owns the shard; one process at a time may open a shard directory (Qdrant Edge
    takes a WAL lock), so several processes need a Qdrant server instead."""

    def __init__(
        self,
        shard: edge.EdgeShard,
        path: Path,
        *,
        embedder: Embedder | None = None,
        dense_size: int | None = None,
        dense_vector: str = DENSE_VECTOR,
    ) -> None:
        self._shard = shard
        self._closed = False
        # Every blocking shard call, on one thread: a call whose caller was cancelled (a
        # stop mid-ingest) still runs to its end there, so the next write comes after it
        # and `aclose()` waits for it instead of closing the shard under it.
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="qdrant-edge")
        self._encoder = Bm25Encoder()
        self._embedder = embedder
        self._dense_size = dense_size
        self._dense_vector = dense_vector
        self.path = path

    @classmethod
    def open(
        cls, path: Path, *, embedder: Embedder | None = None, dense_size: int | None = None
    ) -> EdgeKnowledgeIndex:
        """Open (or create) the shard at `path`. With an embedder the shard must have been
        created with a dense vector of `dense_size`. Without one, a new shard gets the
        bundled static embeddings (static.py) beside BM25; a shard built before them, or
        for another model, is searched by BM25 alone, and says how to add them."""
        size = dense_vectors.require_size(embedder, dense_size)
        path.mkdir(parents=True, exist_ok=True)
        existing = any(path.iterdir())
        if embedder is None and (static := static_embedder()) is not None:
            shard = _open_static(path, existing)
            if shard is not None:
                return cls._ready(shard, path, embedder=static, dense_size=STATIC_SIZE,
                                  dense_vector=STATIC_VECTOR)
        try:
            if existing:
                # Without a config, load keeps the shard as it is; with one, Edge checks
                # that the stored vectors match it.
                shard = edge.EdgeShard.load(str(path), _config(size) if size else None)
            else:
                shard = edge.EdgeShard.create(str(path), _config(size))
        except Exception as e:
            if existing and "incompatible" in str(e).lower():
                hint = dense_vectors.rebuild_hint(f"the embedded Qdrant shard at {path}")
                raise ConfigurationError([f"{hint} ({e})"]) from e
            raise ConfigurationError(
                [
                    f"cannot open the embedded Qdrant shard at {path}: {e} (is another "
                    "Switchboard process using this DATA_DIR? Several processes need QDRANT_URL)"
                ]
            ) from e
        return cls._ready(shard, path, embedder=embedder, dense_size=size)

    @classmethod
    def _ready(
        cls, shard: edge.EdgeShard, path: Path, *, embedder: Embedder | None,
        dense_size: int | None, dense_vector: str = DENSE_VECTOR,
    ) -> EdgeKnowledgeIndex:
        try:
            _ensure_payload_indexes(shard)
        except Exception as e:
            shard.close()
            problem = f"cannot index the embedded Qdrant shard at {path}: {e}"
            raise ConfigurationError([problem]) from e
        return cls(shard, path, embedder=embedder, dense_size=dense_size,
                   dense_vector=dense_vector)

    @property
    def dense_model(self) -> str | None:
        """The model behind the dense vector (the bundled static one by default), or None
        for BM25 alone."""
        return self._embedder.name if self._embedder is not None else None

    # -- KnowledgeStore ------------------------------------------------------------------

    async def upsert(self, chunks: Sequence[Chunk]) -> None:
        if not chunks:
            return
        vectors = None
        if self._embedder is not None and self._dense_size is not None:
            vectors = await dense_vectors.embed_chunks(self._embedder, chunks, self._dense_size)
        await self._blocking(self._write, chunks, vectors)

    def _write(self, chunks: Sequence[Chunk], dense: list[list[float]] | None) -> None:
        points = []
        for i, chunk in enumerate(chunks):
            vector: dict[str, Any] = {SPARSE_VECTOR: self._encoder.document(chunk)}
            if dense is not None:
                vector[self._dense_vector] = dense[i]
            points.append(edge.Point(chunk.id, vector, to_payload(chunk)))
        self._update(edge.UpdateOperation.upsert_points(points))

    async def delete_source(self, source: str) -> int:
        where = _filter([source_condition(source)], must=True)
        return await self._blocking(self._delete, where)

    def _delete(self, where: edge.Filter) -> int:
        found = self._shard.count(edge.CountRequest(exact=True, filter=where))
        if found:
            self._update(edge.UpdateOperation.delete_points_by_filter(where))
        return found

    async def sources(self) -> dict[str, str]:
        return await self._blocking(self._sources)

    def _sources(self) -> dict[str, str]:
        found: dict[str, str] = {}
        offset: Any = None
        selector = edge.PayloadSelector.Include(SOURCE_FIELDS)
        while True:
            records, offset = self._shard.scroll(
                edge.ScrollRequest(offset=offset, limit=SCROLL_PAGE, with_payload=selector)
            )
            for record in records:
                note_source(found, record.payload or {})
            if offset is None:
                return found

    async def count(self) -> int:
        return self._shard.count(edge.CountRequest(exact=True))

    # -- DocumentReader ------------------------------------------------------------------

    async def passages_of(self, source: str, *, audience: Audience, limit: int) -> list[Passage]:
        where = edge.Filter(
            must=[_condition(source_condition(source))],
            should=[_condition(c) for c in access_conditions(audience)],
        )
        found: list[tuple[object, dict[str, Any] | None]] = []
        offset: Any = None
        while True:  # every page: points come in id order, not the document's
            records, offset = self._shard.scroll(
                edge.ScrollRequest(offset=offset, limit=SCROLL_PAGE, filter=where,
                                   with_payload=True)
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
        plan = await plan_search(
            query, limit=limit, mode=mode, encoder=self._encoder,
            embedder=self._embedder, dense_size=self._dense_size,
            dense_vector=self._dense_vector,
        )
        where = _filter(access_conditions(audience))
        request = _request(plan, where)
        if request is None or (plan.needs_word_match and not self._shard.query(
            _word_match(plan, where)
        )):
            return []
        return [to_passage(p.id, p.payload, p.score) for p in self._shard.query(request)]

    # -- Maintenance ---------------------------------------------------------------------

    async def optimize(self) -> bool:
        """Build indexes and merge segments (blocking for seconds at 10k+ passages, so in a
        thread); True if anything changed."""
        return await self._blocking(self._shard.optimize)

    async def prepare(self) -> None:
        """Nothing to do: the shard is ready once opened (the server index creates its
        collection here)."""

    async def ping(self) -> None:
        self._shard.info()

    def describe(self) -> str:
        return f"embedded Qdrant Edge shard at {self.path}"

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            await asyncio.to_thread(self._thread.shutdown, wait=True)
            self._shard.flush()
            self._shard.close()

    async def _blocking(self, call: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._thread, call, *args)

    def _update(self, operation: edge.UpdateOperation) -> None:
        try:
            self._shard.update(operation)
        except Exception as e:
            raise StorageError(f"{self.describe()} refused a write: {e}") from e


def _open_static(path: Path, existing: bool) -> edge.EdgeShard | None:
    """The shard with the static vector, or None if it was built without it (then the
    caller opens it as it is)."""
    config = _config(STATIC_SIZE, STATIC_VECTOR)
    try:
        if existing:
            return edge.EdgeShard.load(str(path), config)
        return edge.EdgeShard.create(str(path), config)
    except Exception as e:
        if not existing or "incompatible" not in str(e).lower():
            return None  # opened again as it is, which reports what is wrong
        log.warning(
            "the embedded Qdrant shard at %s was built without the bundled static "
            "embeddings: search uses BM25 alone until it is rebuilt (stop Switchboard, "
            "delete that folder, run `switchboard ingest` again)", path,
        )
        return None


def _config(dense_size: int | None, name: str = DENSE_VECTOR) -> edge.EdgeConfig:
    vectors = {}
    if dense_size:
        vectors[name] = edge.EdgeVectorParams(dense_size, edge.Distance.Cosine)
    return edge.EdgeConfig(
        vectors=vectors,
        sparse_vectors={SPARSE_VECTOR: edge.EdgeSparseVectorParams(modifier=edge.Modifier.Idf)},
    )


def _ensure_payload_indexes(shard: edge.EdgeShard) -> None:
    present = shard.info().payload_schema
    for field in KEYWORD_INDEXES:
        if field not in present:
            keyword = edge.PayloadSchemaType.Keyword
            shard.update(edge.UpdateOperation.create_field_index(field, keyword))


def _filter(conditions: list[Condition], *, must: bool = False) -> edge.Filter:
    translated: list[Any] = [_condition(c) for c in conditions]
    return edge.Filter(must=translated) if must else edge.Filter(should=translated)


def _condition(condition: Condition) -> edge.FieldCondition:
    match condition:
        case Equals(field=field, value=value):
            return edge.FieldCondition(field, match=edge.MatchValue(value))
        case AnyOf(field=field, values=values):
            return edge.FieldCondition(field, match=edge.MatchAny(list(values)))
        case _:
            assert_never(condition)


def _word_match(plan: SearchPlan, where: edge.Filter) -> edge.QueryRequest:
    """One passage the reader may see that shares a word with the question, if any."""
    query = edge.Query.Nearest(plan.sparse, using=SPARSE_VECTOR)
    return edge.QueryRequest(1, query=query, filter=where, with_payload=False)


def _request(plan: SearchPlan, where: edge.Filter) -> edge.QueryRequest | None:
    if plan.sparse is not None and plan.dense is not None:
        n = candidates(plan.limit)
        sparse = edge.Query.Nearest(plan.sparse, using=SPARSE_VECTOR)
        dense = edge.Query.Nearest(plan.dense, using=plan.dense_vector)
        prefetches = [edge.Prefetch(n, query=q, filter=where) for q in (sparse, dense)]
        return edge.QueryRequest(
            plan.limit, prefetches=prefetches,
            query=edge.Fusion.Dbsf(),  # type: ignore[arg-type]  # stub omits Fusion
            filter=where, with_payload=True,
        )
    if plan.sparse is not None:
        query = edge.Query.Nearest(plan.sparse, using=SPARSE_VECTOR)
    elif plan.dense is not None:
        query = edge.Query.Nearest(plan.dense, using=plan.dense_vector)
    else:
        return None
    return edge.QueryRequest(plan.limit, query=query, filter=where, with_payload=True)
