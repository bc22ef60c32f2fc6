"""The source view: one indexed document, for a person checking what an answer cited
(a local file has no address of its own to link to)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from adapters.web.channel import WEB_CHANNEL
from adapters.web.errors import json_error
from core.context import person_audience

SOURCE_CHARS = 4096
PASSAGES = 500  # a long manual is shown in part rather than as megabytes of JSON


def add_source_routes(app: web.Application) -> None:
    app.router.add_get("/api/v1/sources", source_view)


async def source_view(request: web.Request) -> web.Response:
    """The document's passages the caller may read, by the same rule as retrieval: a
    document they may not see is as unknown as one never indexed (404 both)."""
    channel = request.app[WEB_CHANNEL]
    sender = channel.auth.sender(request)
    source = request.query.get("source", "")
    if not source or len(source) > SOURCE_CHARS or not source.isprintable():
        raise json_error(400, f"source must name a document (1 to {SOURCE_CHARS} characters)")
    if channel.documents is None:
        # The web role of a split layout: the worker owns the embedded index.
        raise json_error(
            503, "documents can be shown only where the knowledge index is open",
            headers={"Retry-After": "60"},
        )
    passages = await channel.documents.passages_of(
        source, audience=person_audience(sender), limit=PASSAGES + 1
    )
    if not passages:
        raise json_error(404, "unknown source")
    first = passages[0]
    body: dict[str, Any] = {
        "source": source,
        "title": first.title.split(" › ", 1)[0],
        "url": first.url,
        "passages": [{"title": p.title, "text": p.text} for p in passages[:PASSAGES]],
        "complete": len(passages) <= PASSAGES,
    }
    return web.json_response(body)
