"""A person's web conversations: the list, one conversation's turns, and ratings of its
answers (stored like Slack's and Teams' feedback buttons)."""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import asdict
from datetime import datetime
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from adapters.web.body import read_body, read_query
from adapters.web.channel import WEB_CHANNEL, WebChannel
from adapters.web.errors import json_error
from adapters.web.models import OUT, ConversationOut, TurnOut
from adapters.web.openapi import ApiRoutes, respond
from adapters.web.render import to_html
from core.feedback import Feedback, Rating
from core.messages import Sender
from core.stops import Stopping
from core.threads import Conversation, ConversationSummary, ListPosition, Turn

TITLE_CHARS = 80
_ID = re.compile(r"[0-9A-Za-z_-]{1,64}")  # conversation ids are hex; anything else is unknown
LIST_LIMIT, LIST_LIMIT_MAX = 30, 100


api = ApiRoutes(tag="conversations")


class FeedbackBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rating: Literal["up", "down"]


class FeedbackOut(BaseModel):
    model_config = OUT

    turn_id: int
    rating: Literal["up", "down"]


class ListQuery(BaseModel):
    limit: int = Field(LIST_LIMIT, description=f"At most this many (1 to {LIST_LIMIT_MAX}).")
    cursor: str | None = Field(None, description="The `next` of the previous page.")


class TurnsQuery(BaseModel):
    limit: int = Field(100, description="The last this many turns (1 to 1000).")


class Summary(BaseModel):
    model_config = OUT

    id: str
    title: str = Field(description="From the first question (its first line, or the "
                       "model's summary of it).")
    created_at: str = Field(json_schema_extra={"format": "date-time"})
    updated_at: str = Field(json_schema_extra={"format": "date-time"})


class StopOut(BaseModel):
    model_config = OUT

    stopping: bool = Field(description="An answer was being written and is being stopped "
                           "(it ends within moments, kept as far as it got); false when "
                           "none was being written.")


class ConversationList(BaseModel):
    model_config = OUT

    conversations: list[Summary]
    next: str | None = Field(None, description="The next page's cursor; absent on the last.")


@api.get("/conversations", query=ListQuery, response=ConversationList, errors=[503])
async def conversation_list(request: web.Request) -> web.Response:
    """The caller's web conversations, most recently active first.

    `next` is the cursor of the following page (absent on the last one).
    """
    channel = request.app[WEB_CHANNEL]
    sender = await channel.auth.sender(request)
    query = read_query(request, ListQuery)
    limit = min(max(query.limit, 1), LIST_LIMIT_MAX)
    after = _position(query.cursor) if query.cursor is not None else None
    found = await channel.conversations.owned(
        channel="web", owner=sender.id, limit=limit + 1, after=after
    )
    page = found[:limit]
    more = {"next": _cursor(page[-1])} if len(found) > limit else {}
    return respond(ConversationList(conversations=[_summary(c) for c in page], **more))


@api.get("/conversations/{id}", query=TurnsQuery, response=ConversationOut, errors=[404, 503])
async def conversation(request: web.Request) -> web.Response:
    """One of the caller's conversations, its last turns oldest first."""
    channel = request.app[WEB_CHANNEL]
    sender = await channel.auth.sender(request)
    conv = await own_conversation(channel, request.match_info["id"], sender)
    limit = min(max(read_query(request, TurnsQuery).limit, 1), 1000)
    turns = [
        t for t in await channel.conversations.recent_turns(conv.id, limit)
        if t.role in ("user", "assistant") and t.content
    ]
    rated = await channel.feedback.given_by(
        sender.id, [t.id for t in turns if t.role == "assistant"]
    )
    return respond(ConversationOut(
        id=conv.id,
        title=_title(conv.title or next((t.content for t in turns if t.role == "user"), "")),
        created_at=conv.created_at.isoformat(),
        updated_at=conv.updated_at.isoformat(),
        turns=[_turn(t, rated.get(t.id)) for t in turns],
    ))


@api.post("/conversations/{id}/stop", response=StopOut, errors=[404, 503])
async def stop_answer(request: web.Request) -> web.Response:
    """Stop the answer being written in one of the caller's conversations (an admin may
    stop anyone's). What was written is kept in the conversation, marked stopped, and the
    message is not answered again. Answers at once; the answer's stream ends with a
    `done` event whose `stopped` is true."""
    channel = request.app[WEB_CHANNEL]
    sender = await channel.auth.sender(request)
    if channel.stopper is None:
        raise json_error(503, "answers cannot be stopped here")
    conv = await own_conversation(channel, request.match_info["id"], sender,
                                  anyones=channel.stopper.is_admin(sender))
    outcome = await channel.stopper.stop_in(conv.id, sender)
    return respond(StopOut(stopping=isinstance(outcome, Stopping)))


@api.post("/conversations/{id}/turns/{turn_id}/feedback", body=FeedbackBody,
          response=FeedbackOut, errors=[404, 503])
async def turn_feedback(request: web.Request) -> web.Response:
    """Thumbs up or down on one answer in the caller's own conversation; rating again
    changes it. Another's conversation, a user turn or an unknown turn: 404 alike."""
    channel = request.app[WEB_CHANNEL]
    sender = await channel.auth.sender(request)
    conv = await own_conversation(channel, request.match_info["id"], sender)
    turn_id = _turn_id(request.match_info["turn_id"])
    body = await read_body(request, FeedbackBody)
    rating = Feedback(turn_id=turn_id, rater=sender.id, rating=body.rating, where=conv.ref)
    if not await channel.feedback.record(rating):
        raise json_error(404, "unknown answer")
    return respond(FeedbackOut(turn_id=turn_id, rating=body.rating))


async def own_conversation(
    channel: WebChannel, conversation_id: str, sender: Sender, *, anyones: bool = False
) -> Conversation:
    """The caller's web conversation, or 404 (another's too, unless `anyones`: an admin)."""
    known = _ID.fullmatch(conversation_id) is not None
    conv = await channel.conversations.get(conversation_id) if known else None
    if conv is None or conv.ref.channel != "web" or not (anyones or conv.owner == sender.id):
        raise json_error(404, "unknown conversation")
    return conv


def _title(title: str) -> str:
    title = " ".join(title.split())
    if len(title) > TITLE_CHARS:
        title = title[: TITLE_CHARS - 1].rstrip() + "…"
    return title or "New conversation"


def _summary(summary: ConversationSummary) -> Summary:
    return Summary(
        id=summary.id,
        title=_title(summary.title),
        created_at=summary.created_at.isoformat(),
        updated_at=summary.updated_at.isoformat(),
    )


def _turn(turn: Turn, rating: Rating | None) -> TurnOut:
    body: dict[str, Any] = {
        "id": turn.id,
        "role": turn.role,
        "content": turn.content,
        "created_at": turn.created_at.isoformat(),
    }
    if turn.role == "assistant":
        body["html"] = to_html(turn.content)
        body["citations"] = [asdict(c) for c in turn.citations]
        body["rating"] = rating
    return TurnOut(**body)


def _turn_id(raw: str) -> int:
    # Ids are database keys: anything else (or beyond a BIGINT) names no answer.
    if not raw.isascii() or not raw.isdigit() or len(raw) > 18:
        raise json_error(404, "unknown answer")
    return int(raw)


def _cursor(last: ConversationSummary) -> str:
    raw = json.dumps([last.updated_at.isoformat(), last.id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _position(cursor: str) -> ListPosition:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        when, conversation_id = json.loads(raw)
        updated_at = datetime.fromisoformat(when)
        if updated_at.tzinfo is None or not _ID.fullmatch(str(conversation_id)):
            raise ValueError
    except (binascii.Error, ValueError, TypeError):
        raise json_error(400, "cursor is not one this server gave") from None
    return ListPosition(updated_at=updated_at, id=str(conversation_id))
