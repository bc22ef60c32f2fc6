"""A Qdrant server stand-in: Qdrant's REST API on loopback, for the calls Switchboard's
`ServerKnowledgeIndex` makes, answered by qdrant-client's local mode (its in-memory
engine). Several processes can share one index through it, as through a real server.

    async with FakeQdrant() as qdrant:       # QDRANT_URL=qdrant.base_url for the children
        ...
        qdrant.stop_answering()              # connections refused from now: "server down"

Requests are parsed with qdrant-client's own REST models and answered in the server's
envelope (`{"result": …, "status": "ok", "time": …}`); an unknown route is 404, a body
the models refuse 400 and a missing collection 404, as Qdrant answers them. Every
request's method and path is kept in `requests`.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from importlib.metadata import version
from typing import Any, Self

from aiohttp import web
from pydantic import BaseModel, ValidationError
from qdrant_client import AsyncQdrantClient, models

Handler = Callable[[web.Request], Awaitable[Any]]


class FakeQdrant:
    def __init__(self) -> None:
        self.client = AsyncQdrantClient(location=":memory:")
        self.requests: list[tuple[str, str]] = []
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None
        self.base_url = ""

    async def __aenter__(self) -> Self:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_get("/", self._version)
        routes: list[tuple[str, str, Handler]] = [
            ("GET", "/collections", self._collections),
            ("GET", "/collections/{c}", self._collection),
            ("PUT", "/collections/{c}", self._create),
            ("GET", "/collections/{c}/exists", self._exists),
            ("PUT", "/collections/{c}/index", self._index),
            ("PUT", "/collections/{c}/points", self._upsert),
            ("POST", "/collections/{c}/points/count", self._count),
            ("POST", "/collections/{c}/points/delete", self._delete),
            ("POST", "/collections/{c}/points/scroll", self._scroll),
            ("POST", "/collections/{c}/points/query", self._query),
            ("POST", "/collections/{c}/points/query/batch", self._query_batch),
        ]
        for method, path, handler in routes:
            app.router.add_route(method, path, self._answer(handler))
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        self._site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await self._site.start()
        port = self._runner.addresses[0][1]
        self.base_url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        await self.client.close()

    async def stop_answering(self) -> None:
        """Close the listening socket: new connections are refused, as by a server that
        is down (the index is kept for `__aexit__`)."""
        if self._site is not None:
            await self._site.stop()

    def _answer(self, handler: Handler) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def answer(request: web.Request) -> web.Response:
            self.requests.append((request.method, request.path))
            started = time.perf_counter()
            try:
                result = await handler(request)
            except ValidationError as e:
                return _error(400, f"Format error in JSON body: {e.errors()[0]['msg']}")
            except ValueError as e:  # local mode: "Collection … not found"
                status = 404 if "not found" in str(e) else 400
                return _error(status, str(e))
            if isinstance(result, BaseModel):
                result = result.model_dump(mode="json")
            elif isinstance(result, list):  # a batch: one result per request
                result = [one.model_dump(mode="json") for one in result]
            return web.json_response({"result": result, "status": "ok",
                                      "time": time.perf_counter() - started})
        return answer

    async def _version(self, request: web.Request) -> web.Response:
        """What a server says of itself: the client checks it is of its own version."""
        self.requests.append((request.method, request.path))
        return web.json_response({"title": "qdrant - vector search engine (stand-in)",
                                  "version": version("qdrant-client")})

    # ----- collections -----

    async def _collections(self, request: web.Request) -> Any:
        return await self.client.get_collections()

    async def _collection(self, request: web.Request) -> Any:
        return await self.client.get_collection(request.match_info["c"])

    async def _exists(self, request: web.Request) -> Any:
        return {"exists": await self.client.collection_exists(request.match_info["c"])}

    async def _create(self, request: web.Request) -> Any:
        body = models.CreateCollection.model_validate(await request.json())
        return await self.client.create_collection(
            request.match_info["c"], vectors_config=body.vectors,
            sparse_vectors_config=body.sparse_vectors,
        )

    async def _index(self, request: web.Request) -> Any:
        models.CreateFieldIndex.model_validate(await request.json())  # 400 if malformed
        await self.client.get_collection(request.match_info["c"])  # 404 if missing
        return _completed()  # local mode has no payload indexes: filters work without

    # ----- points -----

    async def _upsert(self, request: web.Request) -> Any:
        body = models.PointsList.model_validate(await request.json())
        await self.client.upsert(request.match_info["c"], points=body.points, wait=True)
        return _completed()

    async def _count(self, request: web.Request) -> Any:
        body = models.CountRequest.model_validate(await request.json())
        return await self.client.count(request.match_info["c"], count_filter=body.filter,
                                       exact=body.exact is not False)

    async def _delete(self, request: web.Request) -> Any:
        raw = await request.json()
        selector: models.PointIdsList | models.FilterSelector
        if "points" in raw:
            selector = models.PointIdsList.model_validate(raw)
        else:
            selector = models.FilterSelector.model_validate(raw)
        await self.client.delete(request.match_info["c"], points_selector=selector, wait=True)
        return _completed()

    async def _scroll(self, request: web.Request) -> Any:
        body = models.ScrollRequest.model_validate(await request.json())
        points, after = await self.client.scroll(
            request.match_info["c"], scroll_filter=body.filter, limit=body.limit or 10,
            offset=body.offset,
            with_payload=True if body.with_payload is None else body.with_payload,
            with_vectors=False if body.with_vector is None else body.with_vector,
        )
        return models.ScrollResult(points=points, next_page_offset=after)

    async def _query(self, request: web.Request) -> Any:
        body = models.QueryRequest.model_validate(await request.json())
        return await self._answer_query(request.match_info["c"], body)

    async def _query_batch(self, request: web.Request) -> Any:
        body = models.QueryRequestBatch.model_validate(await request.json())
        return [await self._answer_query(request.match_info["c"], one) for one in body.searches]

    async def _answer_query(self, collection: str, body: models.QueryRequest) -> Any:
        return await self.client.query_points(
            collection, query=body.query, using=body.using,
            prefetch=body.prefetch, query_filter=body.filter, search_params=body.params,
            limit=body.limit or 10, offset=body.offset,
            with_payload=True if body.with_payload is None else body.with_payload,
            with_vectors=False if body.with_vector is None else body.with_vector,
            score_threshold=body.score_threshold,
        )

def _completed() -> dict[str, Any]:
    return {"operation_id": 0, "status": "completed"}


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"status": {"error": message}, "time": 0.0}, status=status)
