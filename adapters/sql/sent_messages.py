"""`SentMessages` on SQL: the platform id of each answer message → the turn it carried."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.sql import units
from adapters.sql.engine import Executor, single_statement, uninterrupted
from adapters.sql.tables import sent_messages
from adapters.sql.types import utcnow
from core.messages import ConversationRef


class SqlSentMessages:
    """Written after each Teams answer, so through the units' executor (SQLite's one
    writer) rather than a connection of its own contending for the file lock."""

    def __init__(
        self, engine: AsyncEngine, executor: Executor, *, now: Callable[[], datetime] = utcnow
    ) -> None:
        self._engine = engine
        self._executor = executor
        self._now = now
        self._inflight: set[asyncio.Task[Any]] = set()

    async def remember(self, where: ConversationRef, message_id: str, turn_id: int) -> None:
        unit = functools.partial(units.remember_sent, where=where, message_id=message_id,
                                 turn_id=turn_id, now=self._now())
        await self._executor.run(unit, f"remembering message {message_id}")

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
