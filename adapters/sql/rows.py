"""Rows ↔ core values, and the queries the stores and the units of work share."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Any

from sqlalchemy import Row, Select, select

from adapters.sql.tables import conversations
from adapters.sql.tables import turns as turns_table
from core.inbox import InboxItem
from core.messages import Citation, ConversationRef, message_from_json
from core.model import ToolCall
from core.profiles import Profile
from core.threads import Conversation, NewTurn, Turn

PROFILE_FIELDS = ("name", "email", "title", "department", "time_zone", "preferences")


def conversation_key(ref: ConversationRef) -> dict[str, str]:
    return {"channel": ref.channel, "tenant": ref.tenant,
            "external_id": ref.conversation, "thread_id": ref.thread or ""}


def find_conversation(ref: ConversationRef) -> Select[Any]:
    return select(conversations).where(
        *(conversations.c[name] == value for name, value in conversation_key(ref).items())
    )


def recent_turns_query(conversation_id: str, limit: int) -> Select[Any]:
    """Newest first, walking the (conversation_id, id) index backwards: O(limit).

    Not `conversation_id = :id ORDER BY id`: PostgreSQL then treats the column as a
    constant and may walk the primary key backwards instead, filtering out every newer turn
    of every other conversation (for an old, long thread: most of the table). A range on
    the column and ORDER BY both columns leave the composite index as the only ordered path.
    """
    column = turns_table.c.conversation_id
    return (
        select(turns_table)
        .where(column >= conversation_id, column <= conversation_id)
        .order_by(column.desc(), turns_table.c.id.desc())
        .limit(limit)
    )


def turn_values(conversation_id: str, turn: NewTurn, now: datetime) -> dict[str, Any]:
    return {
        "conversation_id": conversation_id,
        "role": turn.role,
        "content": turn.content,
        "tool_calls": [asdict(call) for call in turn.tool_calls] or None,
        "tool_call_id": turn.tool_call_id,
        "tokens": turn.tokens,
        "citations": [asdict(citation) for citation in turn.citations] or None,
        "inbox_item_id": turn.inbox_item_id,
        "created_at": now,
    }


def to_conversation(row: Row[Any]) -> Conversation:
    ref = ConversationRef(
        channel=row.channel,
        tenant=row.tenant,
        conversation=row.external_id,
        thread=row.thread_id or None,
    )
    return Conversation(
        id=row.id, ref=ref, owner=row.owner, created_at=row.created_at,
        updated_at=row.updated_at, title=row.title,
    )


def to_turn(row: Row[Any]) -> Turn:
    return Turn(
        id=row.id,
        conversation_id=row.conversation_id,
        role=row.role,
        content=row.content,
        tool_calls=tuple(ToolCall(**call) for call in row.tool_calls or ()),
        tool_call_id=row.tool_call_id,
        tokens=row.tokens,
        citations=tuple(Citation(**citation) for citation in row.citations or ()),
        inbox_item_id=row.inbox_item_id,
        created_at=row.created_at,
    )


def to_item(row: Row[Any]) -> InboxItem:
    return InboxItem(
        id=row.id,
        message=message_from_json(row.payload),
        status=row.status,
        attempts=row.attempts,
        lease_until=row.lease_until,
        last_error=row.last_error,
        reply_id=row.reply_id,
        lease_owner=row.lease_owner,
        stopped_by=row.stopped_by,
    )


def to_profile(row: Row[Any]) -> Profile:
    return Profile(id=row.id, **{name: getattr(row, name) for name in PROFILE_FIELDS})


def profile_values(profile: Profile) -> dict[str, Any]:
    return {name: getattr(profile, name) for name in PROFILE_FIELDS}
