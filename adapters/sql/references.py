"""`ConversationReferences` on SQL: the latest way to reach each conversation."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.sql.engine import insert, single_statement, uninterrupted
from adapters.sql.tables import conversation_references as refs
from adapters.sql.types import utcnow
from core.messages import ConversationRef


class SqlConversationReferences:
    def __init__(self, engine: AsyncEngine, *, now: Callable[[], datetime] = utcnow) -> None:
        self._engine = engine
        self._now = now
        self._inflight: set[asyncio.Task[Any]] = set()

    @uninterrupted
    async def remember(self, where: ConversationRef, reference: dict[str, Any]) -> None:
        values = {"reference": reference, "updated_at": self._now()}
        stmt = (
            insert(self._engine, refs)
            .values(channel=where.channel, tenant=where.tenant,
                    conversation=where.conversation, thread=where.thread or "", **values)
            .on_conflict_do_update(
                index_elements=["channel", "tenant", "conversation", "thread"], set_=values
            )
        )
        async with single_statement(self._engine, "remembering a conversation") as conn:
            await conn.execute(stmt)

    @uninterrupted
    async def get(self, where: ConversationRef) -> dict[str, Any] | None:
        query = select(refs.c.reference).where(
            refs.c.channel == where.channel, refs.c.tenant == where.tenant,
            refs.c.conversation == where.conversation, refs.c.thread == (where.thread or ""),
        )
        async with single_statement(self._engine, "reading a conversation reference") as conn:
            found: dict[str, Any] | None = (await conn.execute(query)).scalar_one_or_none()
            return found
