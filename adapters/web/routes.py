"""The web channel's routes: chat (JSON and server-sent events), history, health, page."""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from aiohttp import web
from aiohttp_sse import sse_response
from pydantic import BaseModel, ConfigDict, Field

from adapters.web import tickets
from adapters.web.body import read_body
from adapters.web.channel import WEB_CHANNEL, Probe, WebChannel
from adapters.web.commands import TicketCommands
from adapters.web.errors import json_error, json_errors
from adapters.web.render import to_html
from adapters.web.replier import CollectingReplier, SseReplier, done_body
from core.inbox import Duplicate, RecordOutcome
from core.messages import ConversationRef, InboundMessage, Sender
from core.ports import ProfileStore, Replier
from core.profiles import Profile
from core.replies import ReplyDone
from core.threads import Conversation, Turn

log = logging.getLogger(__name__)

PAGE = Path(__file__).parent / "static" / "index.html"
__all__ = ["WEB_CHANNEL", "WebChannel", "add_web_routes"]


class ChatBody(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    message: str = Field(min_length=1, max_length=32_000)
    conversation_id: str | None = Field(None, min_length=1, max_length=64)
    message_id: str | None = Field(None, min_length=1, max_length=128, pattern=r"^[\w.:-]+$")
    time_zone: str | None = Field(None, max_length=64)


def add_web_routes(app: web.Application) -> None:
    """Routes and middleware; the `WebChannel` itself is set under `WEB_CHANNEL` by the
    server's start-up, once its services exist."""
    app.middlewares.append(json_errors)
    app.router.add_get("/", page)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/api/v1/info", info)
    app.router.add_post("/api/v1/chat", chat)
    app.router.add_post("/api/v1/chat/stream", chat_stream)
    app.router.add_get("/api/v1/conversations/{id}", conversation)
    tickets.add_ticket_routes(app)


async def page(request: web.Request) -> web.FileResponse:
    return web.FileResponse(PAGE, headers={"Cache-Control": "no-cache"})


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def info(request: web.Request) -> web.Response:
    """What the page shows before the first message (no authentication: nothing private)."""
    channel = request.app[WEB_CHANNEL]
    return web.json_response({"name": channel.name, "api_key_required": channel.auth.requires_keys})


async def readyz(request: web.Request) -> web.Response:
    probes = request.app[WEB_CHANNEL].probes
    results = await asyncio.gather(*(_probe(name, p) for name, p in probes.items()))
    checks = dict(zip(probes, results, strict=True))
    ready = all(r == "ok" for r in results)
    return web.json_response(
        {"status": "ready" if ready else "not ready", "checks": checks},
        status=200 if ready else 503,
    )


async def _probe(name: str, probe: Probe) -> str:
    try:
        async with asyncio.timeout(3):
            await probe()
    except Exception as e:
        log.warning("readiness check %s failed", name, exc_info=True)
        return f"error: {type(e).__name__}"
    return "ok"


async def chat(request: web.Request) -> web.Response:
    channel, message, conv = await _accept(request)
    replier = CollectingReplier()
    outcome = await _answer_now(channel, message, replier)
    ids = {"conversation_id": conv.id, "message_id": _client_id(message)}
    if replier.failed is not None:
        return web.json_response(
            {"error": replier.failed.text, "reference": replier.failed.reference,
             "retryable": True, **ids},
            status=503,
        )
    done = replier.done or await _stored_answer(channel, outcome)
    return web.json_response({**done_body(done), **ids})


async def chat_stream(request: web.Request) -> web.StreamResponse:
    channel, message, conv = await _accept(request)
    ids = {"conversation_id": conv.id, "message_id": _client_id(message)}
    async with sse_response(request, allow_all_methods=True) as response:
        replier = SseReplier(response, extra=ids)
        await replier.emit("start", ids)
        outcome = await _answer_now(channel, message, replier)
        if isinstance(outcome, Duplicate):
            try:
                await replier.send(await _stored_answer(channel, outcome))
            except web.HTTPConflict:
                await replier.emit(
                    "error",
                    {"error": "This message is already being answered.", "retryable": True, **ids},
                )
        response.stop_streaming()
    return response


async def _answer_now(
    channel: WebChannel, message: InboundMessage, replier: Replier
) -> RecordOutcome:
    """Typed `/ticket …` is answered by the ticket service without the model; anything
    else by the worker. Both record the message in the inbox first, so a retried request
    (same message id) is a `Duplicate` and is never answered twice."""
    if TicketCommands.handles(message):
        commands = TicketCommands(
            tickets=channel.tickets, inbox=channel.inbox, conversations=channel.conversations,
            owner=channel.worker.owner, lease=channel.worker.lease,
        )
        return await commands.answer_now(message, replier)
    return await channel.worker.answer_now(message, replier)


async def conversation(request: web.Request) -> web.Response:
    channel = request.app[WEB_CHANNEL]
    sender = channel.auth.sender(request)
    conv = await _own_conversation(channel, request.match_info["id"], sender)
    try:
        limit = min(max(int(request.query.get("limit", "100")), 1), 1000)
    except ValueError:
        raise json_error(400, "limit must be a whole number") from None
    turns = await channel.conversations.recent_turns(conv.id, limit)
    return web.json_response(
        {
            "id": conv.id,
            "created_at": conv.created_at.isoformat(),
            "updated_at": conv.updated_at.isoformat(),
            "turns": [
                _turn_json(t) for t in turns if t.role in ("user", "assistant") and t.content
            ],
        }
    )


def _turn_json(turn: Turn) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": turn.id,
        "role": turn.role,
        "content": turn.content,
        "created_at": turn.created_at.isoformat(),
    }
    if turn.role == "assistant":
        body["html"] = to_html(turn.content)
        body["citations"] = [asdict(c) for c in turn.citations]
    return body


async def _accept(request: web.Request) -> tuple[WebChannel, InboundMessage, Conversation]:
    """Authenticate, validate, and turn the request into an inbound message; every
    rejection happens here, before anything is stored."""
    channel = request.app[WEB_CHANNEL]
    sender = channel.auth.sender(request)
    body = await read_body(request, ChatBody)
    user = sender.id.rsplit(":", 1)[-1]
    message_id = f"{user}/{body.message_id or uuid.uuid4().hex}"
    earlier = None
    if body.message_id:
        earlier = await channel.inbox.find(channel="web", tenant="local", message_id=message_id)
    if earlier is not None:
        # A retry: answer (or re-show the answer) where the message was first sent, even
        # if the client never learnt that conversation's id.
        conv = await channel.conversations.get_or_create(
            earlier.message.conversation, owner=sender.id
        )
    elif body.conversation_id:
        conv = await _own_conversation(channel, body.conversation_id, sender)
    else:
        ref = ConversationRef(channel="web", tenant="local", conversation=uuid.uuid4().hex)
        conv = await channel.conversations.get_or_create(ref, owner=sender.id)
    await _remember(channel.profiles, sender, body.time_zone)
    message = InboundMessage(
        id=message_id,
        conversation=conv.ref,
        sender=sender,
        text=body.message,
        sent_at=datetime.now(UTC),
        is_direct=True,
    )
    return channel, message, conv


async def _own_conversation(
    channel: WebChannel, conversation_id: str, sender: Sender
) -> Conversation:
    conv = await channel.conversations.get(conversation_id)
    if conv is None or conv.ref.channel != "web" or conv.owner != sender.id:
        raise json_error(404, "unknown conversation")
    return conv


async def _remember(profiles: ProfileStore, sender: Sender, time_zone: str | None) -> None:
    """Fill in the profile with what the web knows: the user's name and browser time zone."""
    if time_zone is not None:
        try:
            ZoneInfo(time_zone)
        except (ZoneInfoNotFoundError, ValueError):
            time_zone = None
    stored = await profiles.get(sender.id)
    update = Profile(id=sender.id, name=sender.name, time_zone=time_zone)
    if stored is None or stored.merged(update) != stored:
        await profiles.upsert(update)


async def _stored_answer(channel: WebChannel, outcome: RecordOutcome) -> ReplyDone:
    """The answer already given to this message (a retried request is not answered twice)."""
    item_id = outcome.item_id if isinstance(outcome, Duplicate) else outcome.item.id
    turns = await channel.conversations.turns_for_item(item_id)
    final = next((t for t in reversed(turns) if t.role == "assistant" and not t.tool_calls), None)
    if final is None:
        raise json_error(409, "this message is already being answered; retry later")
    return ReplyDone(text=final.content, citations=final.citations, turn_id=final.id)


def _client_id(message: InboundMessage) -> str:
    return message.id.split("/", 1)[1]
