"""REST for support tickets, scoped to the verified caller (the chat API's auth).

    GET   /api/v1/tickets         the caller's tickets (?all=true for agents, ?include_closed=true)
    POST  /api/v1/tickets         {title, description?, priority?} → 201 + Location
    GET   /api/v1/tickets/{id}    TCK-1042 or 1042
    PATCH /api/v1/tickets/{id}    {status?, comment?}

Someone else's ticket answers 404 with the same body as a missing one. A `TicketError` is
the one-line `error`; nothing is changed by a rejected request.
"""

from __future__ import annotations

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, model_validator

from adapters.web.body import read_body
from adapters.web.channel import WEB_CHANNEL, WebChannel
from adapters.web.errors import json_error
from core.messages import Sender
from core.tickets.model import COMMENT_MAX, Ticket, TicketError, ticket_json

LIST_LIMIT = 200


class NewTicketBody(BaseModel):
    # Lengths and the priority are the service's to check, so the error reads the same
    # as in every channel.
    model_config = ConfigDict(extra="forbid")

    title: str
    description: str = ""
    priority: str = "medium"


class TicketPatch(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    status: str | None = Field(None, min_length=1)
    # Checked here, before the status changes, so a bad comment changes nothing.
    comment: str | None = Field(None, min_length=1, max_length=COMMENT_MAX)

    @model_validator(mode="after")
    def _something(self) -> TicketPatch:
        if self.status is None and self.comment is None:
            raise ValueError("give a status, a comment, or both")
        return self


def add_ticket_routes(app: web.Application) -> None:
    app.router.add_get("/api/v1/tickets", list_tickets)
    app.router.add_post("/api/v1/tickets", create_ticket)
    app.router.add_get("/api/v1/tickets/{id}", show_ticket)
    app.router.add_patch("/api/v1/tickets/{id}", update_ticket)


async def list_tickets(request: web.Request) -> web.Response:
    channel, sender = _caller(request)
    everyone = _flag(request, "all")
    include_closed = _flag(request, "include_closed")
    try:
        limit = min(max(int(request.query.get("limit", "50")), 1), LIST_LIMIT)
    except ValueError:
        raise json_error(400, "limit must be a whole number") from None
    found = await channel.tickets.list(
        sender, everyone=everyone, include_closed=include_closed, limit=limit
    )
    return web.json_response({"tickets": [ticket_json(t) for t in found]})


async def create_ticket(request: web.Request) -> web.Response:
    channel, sender = _caller(request)
    body = await read_body(request, NewTicketBody)
    try:
        ticket = await channel.tickets.create(
            sender, title=body.title, description=body.description, priority=body.priority
        )
    except TicketError as e:
        raise json_error(400, str(e)) from None
    return web.json_response(
        ticket_json(ticket), status=201,
        headers={"Location": f"/api/v1/tickets/{ticket.number}"},
    )


async def show_ticket(request: web.Request) -> web.Response:
    channel, sender = _caller(request)
    return web.json_response(ticket_json(await _visible(channel, sender, request)))


async def update_ticket(request: web.Request) -> web.Response:
    channel, sender = _caller(request)
    ticket = await _visible(channel, sender, request)  # a 404 before the body is even read
    patch = await read_body(request, TicketPatch)
    try:
        if patch.status is not None:
            ticket = await channel.tickets.set_status(sender, ticket.id, patch.status)
        if patch.comment is not None:
            ticket = await channel.tickets.comment(sender, ticket.id, patch.comment)
    except TicketError as e:
        raise json_error(400, str(e)) from None
    return web.json_response(ticket_json(ticket))


def _caller(request: web.Request) -> tuple[WebChannel, Sender]:
    channel = request.app[WEB_CHANNEL]
    return channel, channel.auth.sender(request)


async def _visible(channel: WebChannel, sender: Sender, request: web.Request) -> Ticket:
    """The ticket if the caller may see it; a missing, malformed or someone else's id is
    the same 404."""
    try:
        return await channel.tickets.show(sender, request.match_info["id"])
    except TicketError as e:
        raise json_error(404, str(e)) from None


def _flag(request: web.Request, name: str) -> bool:
    value = request.query.get(name, "false").lower()
    if value not in ("true", "1", "false", "0"):
        raise json_error(400, f"{name} must be true or false")
    return value in ("true", "1")
