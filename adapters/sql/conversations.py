"""`ConversationStore` on SQL: reading conversations and their turns (the API's listings,
the terminal's last thread). The answer path writes them through the units of work;
`get_or_create` and `add_turns` run those same units, for callers outside it."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.sql import units
from adapters.sql.engine import single_statement, transaction, uninterrupted
from adapters.sql.rows import find_conversation, recent_turns_query, to_conversation, to_turn
from adapters.sql.tables import conversations, turns
from adapters.sql.types import utcnow
from core.messages import ConversationRef
from core.threads import Conversation, ConversationSummary, ListPosition, NewTurn, Turn

TITLE_CHARS = 200  # read of the first message; the page shortens it further


class SqlConversationStore:
    def __init__(self, engine: AsyncEngine, *, now: Callable[[], datetime] = utcnow) -> None:
        self._engine = engine
        self._now = now
        self._inflight: set[asyncio.Task[Any]] = set()

    @uninterrupted
    async def get_or_create(self, ref: ConversationRef, *, owner: str | None) -> Conversation:
        unit = functools.partial(
            units.get_or_create_conversation, ref=ref, owner=owner, now=self._now()
        )
        async with transaction(self._engine, "opening a conversation") as conn:
            return await conn.run_sync(unit)

    @uninterrupted
    async def get(self, conversation_id: str) -> Conversation | None:
        query = select(conversations).where(conversations.c.id == conversation_id)
        async with single_statement(self._engine, "reading a conversation") as conn:
            row = (await conn.execute(query)).one_or_none()
        return None if row is None else to_conversation(row)

    @uninterrupted
    async def find(self, ref: ConversationRef) -> Conversation | None:
        async with single_statement(self._engine, "finding a conversation") as conn:
            row = (await conn.execute(find_conversation(ref))).one_or_none()
        return None if row is None else to_conversation(row)

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
        return None if row is None else to_conversation(row)

    @uninterrupted
    async def owned(
        self, *, channel: str, owner: str, limit: int, after: ListPosition | None = None
    ) -> list[ConversationSummary]:
        # The index (channel, owner, updated_at) serves the page; the title is one lookup
        # of the first user turn per listed conversation, not a scan of the thread.
        first_message = (
            select(func.substr(turns.c.content, 1, TITLE_CHARS))
            .where(turns.c.conversation_id == conversations.c.id, turns.c.role == "user")
            .order_by(turns.c.id)
            .limit(1)
            .scalar_subquery()
        )
        query = (
            select(conversations.c.id, conversations.c.created_at, conversations.c.updated_at,
                   func.coalesce(conversations.c.title, first_message).label("title"))
            .where(conversations.c.channel == channel, conversations.c.owner == owner)
            .order_by(conversations.c.updated_at.desc(), conversations.c.id.desc())
            .limit(limit)
        )
        if after is not None:
            query = query.where(or_(
                conversations.c.updated_at < after.updated_at,
                and_(conversations.c.updated_at == after.updated_at,
                     conversations.c.id < after.id),
            ))
        async with single_statement(self._engine, "listing conversations") as conn:
            rows = (await conn.execute(query)).all()
        return [
            ConversationSummary(id=row.id, title=" ".join((row.title or "").split()),
                                created_at=row.created_at, updated_at=row.updated_at)
            for row in rows
        ]

    @uninterrupted
    async def recent_turns(self, conversation_id: str, limit: int) -> list[Turn]:
        async with single_statement(self._engine, "reading recent turns") as conn:
            rows = (await conn.execute(recent_turns_query(conversation_id, limit))).all()
        return [to_turn(row) for row in reversed(rows)]

    @uninterrupted
    async def add_turns(self, conversation_id: str, turns: Sequence[NewTurn]) -> list[Turn]:
        unit = functools.partial(
            units.add_turns, conversation_id=conversation_id, new=turns, now=self._now()
        )
        async with transaction(self._engine, f"adding turns to {conversation_id}") as conn:
            return await conn.run_sync(unit)
