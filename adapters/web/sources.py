"""The source view: one indexed document, for a person checking what an answer cited
(a local file has no address of its own to link to)."""

from __future__ import annotations

from dataclasses import replace

from aiohttp import web
from pydantic import BaseModel, Field

from adapters.web.body import read_query
from adapters.web.channel import WEB_CHANNEL
from adapters.web.errors import json_error
from adapters.web.models import OUT
from adapters.web.openapi import ApiRoutes, respond
from core.context import person_audience

SOURCE_CHARS = 4096
PASSAGES = 500  # a long manual is shown in part rather than as megabytes of JSON


api = ApiRoutes(tag="sources")


class SourceQuery(BaseModel):
    source: str = Field(description="A citation's `source`.")


class Passage(BaseModel):
    model_config = OUT

    title: str
    text: str


class SourceOut(BaseModel):
    model_config = OUT

    source: str
    title: str
    url: str | None
    passages: list[Passage]
    complete: bool = Field(description=f"False when cut at {PASSAGES} passages.")


@api.get("/sources", query=SourceQuery, response=SourceOut, errors=[404, 503])
async def source_view(request: web.Request) -> web.Response:
    """One indexed document's passages, for checking what an answer cited.

    By the same rule as retrieval: a document the caller may not see is as unknown as
    one never indexed (404 both). 503 on the web role of a split layout, where the
    worker holds the index.
    """
    channel = request.app[WEB_CHANNEL]
    sender = await channel.auth.sender(request)
    source = read_query(request, SourceQuery).source
    if not source or len(source) > SOURCE_CHARS or not source.isprintable():
        raise json_error(400, f"source must name a document (1 to {SOURCE_CHARS} characters)")
    if channel.documents is None:
        # The web role of a split layout: the worker owns the embedded index.
        raise json_error(
            503, "documents can be shown only where the knowledge index is open",
            headers={"Retry-After": "60"},
        )
    if channel.groups is not None:  # as the turn that cited it read them (`begin_turn`)
        kept = await channel.groups.groups_of(sender)
        sender = replace(sender, groups=tuple(sorted({*sender.groups, *kept})))
    passages = await channel.documents.passages_of(
        source, audience=person_audience(sender), limit=PASSAGES + 1
    )
    if not passages:
        raise json_error(404, "unknown source")
    first = passages[0]
    return respond(SourceOut(
        source=source,
        title=first.title.split(" › ", 1)[0],
        url=first.url,
        passages=[Passage(title=p.title, text=p.text) for p in passages[:PASSAGES]],
        complete=len(passages) <= PASSAGES,
    ))
