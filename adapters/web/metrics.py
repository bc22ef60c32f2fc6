"""`GET /metrics`: the process's metrics for a Prometheus scraper, guarded like the API
(loopback without API keys, `Authorization: Bearer <key>` with them). Not under /api/v1:
scrapers expect it at the root. What the text says is the metrics adapter's to render."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from adapters.web.auth import WebAuth


@dataclass(frozen=True, kw_only=True)
class MetricsEndpoint:
    auth: WebAuth
    scrape: Callable[[], Awaitable[bytes]]  # the exposition text, read fresh
    content_type: str


METRICS_ENDPOINT = web.AppKey("metrics_endpoint", MetricsEndpoint)


def add_metrics_route(app: web.Application) -> None:
    """The endpoint itself is set under `METRICS_ENDPOINT` once the services exist."""
    app.router.add_get("/metrics", metrics)


async def metrics(request: web.Request) -> web.Response:
    endpoint = request.app.get(METRICS_ENDPOINT)
    if endpoint is None:  # still starting
        raise web.HTTPServiceUnavailable(headers={"Retry-After": "1"})
    # Raises when the caller may not read them.
    await endpoint.auth.sender(request)
    body = await endpoint.scrape()
    return web.Response(body=body, headers={"Content-Type": endpoint.content_type})
