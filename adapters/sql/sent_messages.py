"""`SentMessages` on SQL: the platform id of each answer message → the turn it carried."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.sql.engine import insert, single_statement, uninterrupted
from adapters.sql.tables import sent_messages
from adapters.sql.types import utcnow
from core.messages import ConversationRef


class SqlSentMessages:
    def __init__(self, engine: AsyncEngine, *, now: Callable[[], datetime] = utcnow) -> None:
        self._engine = engine
        self._now = now
        self._inflight: set[asyncio.Task[Any]] = set()

    @uninterrupted
    async def remember(self, where: ConversationRef, message_id: str, turn_id: int) -> None:
        stmt = (
            insert(self._engine, sent_messages)
            .values(channel=where.channel, tenant=where.tenant, conversation=where.conversation,
                    message_id=message_id, turn_id=turn_id, created_at=self._now())
            .on_conflict_do_nothing(
                index_elements=["channel", "tenant", "conversation", "message_id"]
            )
        )
        async with single_statement(self._engine, f"remembering message {message_id}") as conn:
            await conn.execute(stmt)

    @uninterrupted
    async def turn_of(self, where: ConversationRef, message_id: str) -> int | None:
        query = select(sent_messages.c.turn_id).where(
            sent_messages.c.channel == where.channel,
            sent_messages.c.tenant == where.tenant,
            sent_messages.c.conversation == where.conversation,
            sent_messages.c.message_id == message_id,
        )
        async with single_statement(self._engine, f"finding message {message_id}") as conn:
            turn: int | None = (await conn.execute(query)).scalar_one_or_none()
            return turn
