"""The web channel's routes: chat (JSON and server-sent events), health, the page and its
assets; conversations (`conversations.py`), sources (`sources.py`) and tickets beside."""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from aiohttp import web
from aiohttp_sse import sse_response

from adapters.web import conversations, docs, ingest, sources, tickets
from adapters.web.body import read_body
from adapters.web.channel import WEB_CHANNEL, Probe, WebChannel
from adapters.web.errors import json_error, json_errors
from adapters.web.models import STREAM_EVENTS, ChatAnswer, ChatBody, Info
from adapters.web.openapi import ApiRoutes, respond
from adapters.web.replier import CollectingReplier, SseReplier, done_body
from core.inbox import (
    Acceptance,
    Duplicate,
    NotFollowed,
    NotYours,
    Recorded,
    RecordOutcome,
    Requeued,
)
from core.messages import ConversationRef, InboundMessage
from core.relay import REPLY_TO, pass_on
from core.replies import ReplyDone

log = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
PAGE = STATIC / "index.html"
ANSWER_WAIT_SECONDS = 75.0  # a retried request, for the answer in progress (> the deadline)
__all__ = ["WEB_CHANNEL", "WebChannel", "add_web_routes"]

api = ApiRoutes(tag="chat")


def add_web_routes(app: web.Application) -> None:
    """Routes and middleware; the `WebChannel` itself is set under `WEB_CHANNEL` by the
    server's start-up, once its services exist."""
    app.middlewares.append(json_errors)
    app.router.add_get("/", page)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_static("/static/", STATIC, append_version=True)
    for table in (api, conversations.api, sources.api, tickets.api, ingest.api):
        table.add_to(app)
    docs.add_docs_routes(app)


async def page(request: web.Request) -> web.FileResponse:
    return web.FileResponse(PAGE, headers={"Cache-Control": "no-cache"})


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


@api.get("/info", response=Info, public=True)
async def info(request: web.Request) -> web.Response:
    """What the page shows before the first message (no API key: nothing private)."""
    channel = request.app[WEB_CHANNEL]
    admin = request.app.get(ingest.KNOWLEDGE_ADMIN)
    return respond(Info(
        name=channel.name, api_key_required=channel.auth.requires_key_from(request),
        adds_documents=admin is not None and admin.base is not None,
    ))


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
        # One line, no traceback: a load balancer asks every few seconds while it lasts.
        cause = f" ({type(e.__cause__).__name__})" if e.__cause__ is not None else ""
        log.warning("readiness check %s failed: %s%s", name, type(e).__name__, cause)
        return f"error: {type(e).__name__}"
    return "ok"


@api.post("/chat", body=ChatBody, response=ChatAnswer, errors=[404, 409, 429, 503])
async def chat(request: web.Request) -> web.Response:
    """Send a message and wait for the whole answer.

    Retrying with the same `message_id` returns the same answer (409 while it is still
    being answered by another request). A failed answer is a 503 whose `retryable` says
    to send the message again.
    """
    channel, acceptance = await _accept(request)
    replier = CollectingReplier()
    async with channel.relay.waiting(acceptance.message.id) as events:
        outcome = await _record(channel, acceptance)
        ids = {"conversation_id": outcome.conversation_id,
               "message_id": _client_id(acceptance.message)}
        if not isinstance(outcome, Duplicate):
            await pass_on(events, replier)
    if replier.failed is not None:
        return web.json_response(
            {"error": replier.failed.text, "reference": replier.failed.reference,
             "retryable": True, **ids},
            status=503,
        )
    done = replier.done or await _stored_answer(channel, outcome)
    return respond(ChatAnswer(**done_body(done), **ids))


@api.post("/chat/stream", body=ChatBody, events=STREAM_EVENTS, errors=[404, 429, 503])
async def chat_stream(request: web.Request) -> web.StreamResponse:
    """Send a message and receive the answer as it is written (server-sent events).

    `start` comes first with the ids; then any `status`, `tool` and `delta` events; then
    one `done` (the whole answer) or `error`. `restart` means another worker answers from
    the start: drop what was shown. Errors before the stream starts are JSON.
    """
    channel, acceptance = await _accept(request)
    async with channel.relay.waiting(acceptance.message.id) as events:
        outcome = await _record(channel, acceptance)
        ids = {"conversation_id": outcome.conversation_id,
               "message_id": _client_id(acceptance.message)}
        async with sse_response(request, allow_all_methods=True) as response:
            replier = SseReplier(response, extra=ids)
            await replier.emit("start", ids)
            if isinstance(outcome, Duplicate):
                try:
                    await replier.send(await _stored_answer(channel, outcome))
                except web.HTTPConflict:
                    await replier.emit(
                        "error",
                        {"error": "This message is already being answered.", "retryable": True,
                         **ids},
                    )
            else:
                await pass_on(events, replier)
            response.stop_streaming()
    return response


async def _record(channel: WebChannel, acceptance: Acceptance) -> Recorded | Requeued | Duplicate:
    """Accept the message (a retried request with the same message id is a `Duplicate`,
    never answered twice) and wake the workers."""
    outcome = await channel.inbox.accept(acceptance)
    match outcome:
        case NotYours() | NotFollowed():
            raise json_error(404, "unknown conversation")
        case Recorded() | Requeued():
            channel.work_added()
    return outcome


async def _accept(request: web.Request) -> tuple[WebChannel, Acceptance]:
    """Authenticate, validate, and turn the request into an inbound message; every
    rejection here happens before anything is stored."""
    channel = request.app[WEB_CHANNEL]
    sender = await channel.auth.sender(request)
    body = await read_body(request, ChatBody)
    await channel.within_limits(sender)
    user = sender.id.rsplit(":", 1)[-1]
    message = InboundMessage(
        id=f"{user}/{body.message_id or uuid.uuid4().hex}",
        # Used only if this starts a conversation: a retry is answered where the message
        # was first sent, and a named conversation is the accept unit's to look up.
        conversation=ConversationRef(channel="web", tenant="local", conversation=uuid.uuid4().hex),
        sender=replace(sender, time_zone=_zone(body.time_zone)),
        text=body.message,
        sent_at=datetime.now(UTC),
        is_direct=True,
        channel_data={REPLY_TO: channel.relay.address},
    )
    return channel, Acceptance(
        message=message, conversation_id=body.conversation_id, open_conversation=True
    )


def _zone(time_zone: str | None) -> str | None:
    """The browser's time zone, if it names one (kept in the sender's profile)."""
    if time_zone is None:
        return None
    try:
        ZoneInfo(time_zone)
    except (ZoneInfoNotFoundError, ValueError):
        return None
    return time_zone


async def _stored_answer(channel: WebChannel, outcome: RecordOutcome) -> ReplyDone:
    """The answer to this message, never a second one: stored already, or, for a request
    retried while the first is still being answered (a client reconnecting), as soon as
    it is stored (up to ANSWER_WAIT_SECONDS)."""
    item_id = outcome.item_id if isinstance(outcome, Duplicate) else outcome.item.id
    loop = asyncio.get_running_loop()
    until, pause = loop.time() + ANSWER_WAIT_SECONDS, 0.05
    while (final := await channel.inbox.answer_of(item_id)) is None:
        item = await channel.inbox.get(item_id)
        if item is not None and item.status == "failed":
            raise json_error(409, "answering this message failed; send it again to retry")
        if item is None or item.status == "done" or loop.time() >= until:
            raise json_error(409, "this message is already being answered; retry later")
        await asyncio.sleep(pause)
        pause = min(pause * 2, 1.0)
    return ReplyDone(text=final.content, citations=final.citations, turn_id=final.id)


def _client_id(message: InboundMessage) -> str:
    return message.id.split("/", 1)[1]
