"""`ConversationStore` on SQL: conversations and the turns stored in them."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict
from datetime import datetime
from typing import Any

from sqlalchemy import Row, Select, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.sql.engine import insert, single_statement, transaction, uninterrupted
from adapters.sql.tables import conversations
from adapters.sql.tables import turns as turns_table
from adapters.sql.types import utcnow
from core.errors import StorageError
from core.messages import Citation, ConversationRef
from core.model import ToolCall
from core.threads import Conversation, NewTurn, Turn


class SqlConversationStore:
    def __init__(self, engine: AsyncEngine, *, now: Callable[[], datetime] = utcnow) -> None:
        self._engine = engine
        self._now = now
        self._inflight: set[asyncio.Task[Any]] = set()

    @uninterrupted
    async def get_or_create(self, ref: ConversationRef, *, owner: str | None) -> Conversation:
        key = _key(ref)
        now = self._now()
        # Insert-or-nothing then read: concurrent callers all end up reading the one row.
        stmt = insert(self._engine, conversations).values(
            id=uuid.uuid4().hex, owner=owner, created_at=now, updated_at=now, **key
        ).on_conflict_do_nothing(index_elements=list(key))
        find = select(conversations).where(
            *(conversations.c[name] == value for name, value in key.items())
        )
        # Nearly every message is in a thread that exists: look before inserting.
        async with single_statement(self._engine, "reading a conversation") as conn:
            row = (await conn.execute(find)).one_or_none()
        if row is None:
            async with transaction(self._engine, "creating a conversation") as conn:
                await conn.execute(stmt)
                row = (await conn.execute(find)).one()
        return _conversation(row)

    @uninterrupted
    async def get(self, conversation_id: str) -> Conversation | None:
        query = select(conversations).where(conversations.c.id == conversation_id)
        async with single_statement(self._engine, "reading a conversation") as conn:
            row = (await conn.execute(query)).one_or_none()
        return None if row is None else _conversation(row)

    @uninterrupted
    async def find(self, ref: ConversationRef) -> Conversation | None:
        query = select(conversations).where(
            *(conversations.c[name] == value for name, value in _key(ref).items())
        )
        async with single_statement(self._engine, "finding a conversation") as conn:
            row = (await conn.execute(query)).one_or_none()
        return None if row is None else _conversation(row)

    @uninterrupted
    async def latest(self, *, channel: str, owner: str) -> Conversation | None:
        query = (
            select(conversations)
            .where(conversations.c.channel == channel, conversations.c.owner == owner)
            .order_by(conversations.c.updated_at.desc())
            .limit(1)
        )
        async with single_statement(self._engine, "finding the latest conversation") as conn:
            row = (await conn.execute(query)).one_or_none()
        return None if row is None else _conversation(row)

    @uninterrupted
    async def recent_turns(self, conversation_id: str, limit: int) -> list[Turn]:
        async with single_statement(self._engine, "reading recent turns") as conn:
            rows = (await conn.execute(recent_turns_query(conversation_id, limit))).all()
        return [_turn(row) for row in reversed(rows)]

    @uninterrupted
    async def turns_for_item(self, inbox_item_id: int) -> list[Turn]:
        by_item = turns_table.c.inbox_item_id == inbox_item_id
        query = select(turns_table).where(by_item).order_by(turns_table.c.id)
        async with single_statement(self._engine, "reading an item's turns") as conn:
            rows = (await conn.execute(query)).all()
        return [_turn(row) for row in rows]

    @uninterrupted
    async def add_turns(self, conversation_id: str, turns: Sequence[NewTurn]) -> list[Turn]:
        if not turns:
            return []
        now = self._now()
        values = [_turn_values(conversation_id, turn, now) for turn in turns]
        # Bumping first also locks the conversation row (PostgreSQL), so concurrent
        # batches for one thread commit one after the other, in id order.
        bump = update(conversations).where(conversations.c.id == conversation_id)
        stmt = insert(self._engine, turns_table).returning(
            turns_table, sort_by_parameter_order=True
        )
        async with transaction(self._engine, f"adding turns to {conversation_id}") as conn:
            if (await conn.execute(bump.values(updated_at=now))).rowcount != 1:
                raise StorageError(f"conversation {conversation_id} does not exist")
            rows = (await conn.execute(stmt, values)).all()
        return [_turn(row) for row in rows]


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


def _turn_values(conversation_id: str, turn: NewTurn, now: datetime) -> dict[str, Any]:
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


def _key(ref: ConversationRef) -> dict[str, str]:
    return {"channel": ref.channel, "tenant": ref.tenant,
            "external_id": ref.conversation, "thread_id": ref.thread or ""}


def _conversation(row: Row[Any]) -> Conversation:
    ref = ConversationRef(
        channel=row.channel,
        tenant=row.tenant,
        conversation=row.external_id,
        thread=row.thread_id or None,
    )
    return Conversation(
        id=row.id, ref=ref, owner=row.owner, created_at=row.created_at, updated_at=row.updated_at
    )


def _turn(row: Row[Any]) -> Turn:
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
