"""REST for support tickets, scoped to the verified caller (the chat API's auth).

    GET   /api/v1/tickets         the caller's tickets (?all=true for agents, ?include_closed=true)
    POST  /api/v1/tickets         {title, description?, priority?} → 201 + Location
    GET   /api/v1/tickets/{id}    TCK-1042 or 1042
    PATCH /api/v1/tickets/{id}    {status?, comment?}

Declared in `api`, whose models are also the API document's (`adapters/web/openapi.py`).
Someone else's ticket answers 404 with the same body as a missing one. A `TicketError` is
the one-line `error`; nothing is changed by a rejected request.
"""

from __future__ import annotations

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, model_validator

from adapters.web.body import read_body, read_query
from adapters.web.channel import WEB_CHANNEL, WebChannel
from adapters.web.errors import json_error
from adapters.web.models import OUT, Flag
from adapters.web.openapi import ApiRoutes, respond
from core.messages import Sender
from core.tickets.model import (
    COMMENT_MAX,
    DESCRIPTION_MAX,
    PRIORITIES,
    STATUSES,
    TITLE_MAX,
    Priority,
    Ticket,
    TicketError,
    TicketStatus,
    ticket_json,
)

LIST_LIMIT = 200

api = ApiRoutes(tag="tickets")


class NewTicketBody(BaseModel):
    # Lengths and the priority are the service's to check, so the error reads the same
    # as in every channel.
    model_config = ConfigDict(extra="forbid")

    # The document still shows what is accepted (not enforced here, for the reason above).
    title: str = Field(
        description=f"One line, at most {TITLE_MAX} characters once spaces are collapsed.",
        json_schema_extra={"pattern": r"\S"},
    )
    description: str = Field("", description=f"At most {DESCRIPTION_MAX} characters.")
    priority: str = Field("medium", json_schema_extra={"enum": list(PRIORITIES)})


class TicketPatch(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    status: str | None = Field(
        None, min_length=1, json_schema_extra={"enum": [*STATUSES, None]},
        description="Requesters may close or reopen their ticket; agents may set any status.",
    )
    # Checked here, before the status changes, so a bad comment changes nothing.
    comment: str | None = Field(None, min_length=1, max_length=COMMENT_MAX)

    @model_validator(mode="after")
    def _something(self) -> TicketPatch:
        if self.status is None and self.comment is None:
            raise ValueError("give a status, a comment, or both")
        return self


class TicketQuery(BaseModel):
    all: Flag = Field(False, description="Every ticket, not only the caller's (agents only).")
    include_closed: Flag = False
    limit: int = Field(50, description=f"At most this many (1 to {LIST_LIMIT}).")


class Origin(BaseModel):
    model_config = OUT

    channel: str
    tenant: str
    conversation: str
    thread: str | None


class Comment(BaseModel):
    model_config = OUT

    author: str
    author_name: str
    text: str
    created_at: str = Field(json_schema_extra={"format": "date-time"})


class TicketOut(BaseModel):
    model_config = OUT

    number: str = Field(description="TCK-1042")
    title: str
    description: str
    priority: Priority
    status: TicketStatus
    requester: str = Field(description="The requester's channel-scoped id.")
    requester_name: str
    assignee: str | None
    origin: Origin | None = Field(description="The conversation it was opened from.")
    origin_link: str | None
    created_at: str = Field(json_schema_extra={"format": "date-time"})
    updated_at: str = Field(json_schema_extra={"format": "date-time"})
    comments_count: int
    comments: list[Comment]


class TicketList(BaseModel):
    model_config = OUT

    tickets: list[TicketOut]


@api.get("/tickets", query=TicketQuery, response=TicketList, errors=[503])
async def list_tickets(request: web.Request) -> web.Response:
    """The caller's tickets, newest first (every ticket for an agent with `all=true`)."""
    channel, sender = await _caller(request)
    query = read_query(request, TicketQuery)
    found = await channel.tickets.list(
        sender, everyone=query.all, include_closed=query.include_closed,
        limit=min(max(query.limit, 1), LIST_LIMIT),
    )
    return respond(TicketList(tickets=[_out(t) for t in found]))


@api.post("/tickets", body=NewTicketBody, response=TicketOut, status=201, errors=[429, 503],
          headers={"Location": "The new ticket's URL."})
async def create_ticket(request: web.Request) -> web.Response:
    """Open a ticket as the caller."""
    channel, sender = await _caller(request)
    body = await read_body(request, NewTicketBody)
    await channel.within_limits(sender)
    try:
        ticket = await channel.tickets.create(
            sender, title=body.title, description=body.description, priority=body.priority
        )
    except TicketError as e:
        raise json_error(400, str(e)) from None
    return respond(
        _out(ticket), status=201, headers={"Location": f"/api/v1/tickets/{ticket.number}"}
    )


@api.get("/tickets/{id}", response=TicketOut, errors=[404, 503])
async def show_ticket(request: web.Request) -> web.Response:
    """One ticket, by number (TCK-1042 or 1042), if the caller may see it."""
    channel, sender = await _caller(request)
    return respond(_out(await _visible(channel, sender, request)))


@api.patch("/tickets/{id}", body=TicketPatch, response=TicketOut, errors=[404, 429, 503])
async def update_ticket(request: web.Request) -> web.Response:
    """Change a ticket's status, comment on it, or both."""
    channel, sender = await _caller(request)
    ticket = await _visible(channel, sender, request)  # a 404 before the body is even read
    patch = await read_body(request, TicketPatch)
    await channel.within_limits(sender)
    try:
        if patch.status is not None:
            ticket = await channel.tickets.set_status(sender, ticket.id, patch.status)
        if patch.comment is not None:
            ticket = await channel.tickets.comment(sender, ticket.id, patch.comment)
    except TicketError as e:
        raise json_error(400, str(e)) from None
    return respond(_out(ticket))


async def _caller(request: web.Request) -> tuple[WebChannel, Sender]:
    channel = request.app[WEB_CHANNEL]
    return channel, await channel.auth.sender(request)


async def _visible(channel: WebChannel, sender: Sender, request: web.Request) -> Ticket:
    """The ticket if the caller may see it; a missing, malformed or someone else's id is
    the same 404."""
    try:
        return await channel.tickets.show(sender, request.match_info["id"])
    except TicketError as e:
        raise json_error(404, str(e)) from None


def _out(ticket: Ticket) -> TicketOut:
    return TicketOut.model_validate(ticket_json(ticket))
