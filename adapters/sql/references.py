"""`ConversationReferences` on SQL: the latest way to reach each conversation."""

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
from adapters.sql.tables import conversation_references as refs
from adapters.sql.types import utcnow
from core.messages import ConversationRef


class SqlConversationReferences:
    """Written as messages arrive, so through the units' executor (SQLite's one writer)."""

    def __init__(
        self, engine: AsyncEngine, executor: Executor, *, now: Callable[[], datetime] = utcnow
    ) -> None:
        self._engine = engine
        self._executor = executor
        self._now = now
        self._inflight: set[asyncio.Task[Any]] = set()

    async def remember(self, where: ConversationRef, reference: dict[str, Any]) -> None:
        unit = functools.partial(
            units.remember_reference, where=where, reference=reference, now=self._now()
        )
        await self._executor.run(unit, "remembering a conversation")

    @uninterrupted
    async def get(self, where: ConversationRef) -> dict[str, Any] | None:
        query = select(refs.c.reference).where(
            refs.c.channel == where.channel, refs.c.tenant == where.tenant,
            refs.c.conversation == where.conversation, refs.c.thread == (where.thread or ""),
        )
        async with single_statement(self._engine, "reading a conversation reference") as conn:
            found: dict[str, Any] | None = (await conn.execute(query)).scalar_one_or_none()
            return found
