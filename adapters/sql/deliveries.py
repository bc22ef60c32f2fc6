"""`DeliveryLog` on SQL: a platform's delivery ids, so a retry is dropped with one statement."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.sql.engine import insert, single_statement, uninterrupted
from adapters.sql.tables import deliveries
from adapters.sql.types import utcnow


class SqlDeliveryLog:
    def __init__(self, engine: AsyncEngine, *, now: Callable[[], datetime] = utcnow) -> None:
        self._engine = engine
        self._now = now
        self._inflight: set[asyncio.Task[Any]] = set()

    @uninterrupted
    async def first_delivery(self, channel: str, key: str) -> bool:
        stmt = (
            insert(self._engine, deliveries)
            .values(channel=channel, key=key, received_at=self._now())
            .on_conflict_do_nothing(index_elements=["channel", "key"])
        )
        async with single_statement(self._engine, f"recording delivery {key}") as conn:
            return (await conn.execute(stmt)).rowcount == 1

    async def seen(self, channel: str, key: str) -> bool:
        query = select(deliveries.c.key).where(
            deliveries.c.channel == channel, deliveries.c.key == key
        )
        async with single_statement(self._engine, f"looking up delivery {key}") as conn:
            return (await conn.execute(query)).first() is not None

    @uninterrupted
    async def forget_before(self, when: datetime) -> int:
        stmt = delete(deliveries).where(deliveries.c.received_at < when)
        async with single_statement(self._engine, "forgetting old deliveries") as conn:
            return (await conn.execute(stmt)).rowcount
