"""The `limits` library's storage on our SQL database, so every process on one PostgreSQL
(or one SQLite file) counts the same messages. Fixed windows only: one counter row per
key, changed with one atomic upsert that also starts a new window once the old one ended
(two processes hitting the same key at once are serialised on the row by the database)."""

from __future__ import annotations

import time
from collections.abc import Callable

from limits.aio.storage import Storage
from sqlalchemy import case, delete, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.sql.engine import insert, single_statement
from adapters.sql.tables import rate_limits
from core.errors import StorageError


class SqlLimitStorage(Storage):
    """For `limits.aio.strategies.FixedWindowRateLimiter`. Failures leave as
    `StorageError`, like every store's: the message is then refused with 503 and retried,
    as when it cannot be recorded."""

    STORAGE_SCHEME = None  # made by the composition root, never from a URI

    def __init__(self, engine: AsyncEngine, *, now: Callable[[], float] = time.time) -> None:
        super().__init__()
        self._engine = engine
        self._now = now

    @property
    def base_exceptions(self) -> type[Exception]:
        return StorageError

    async def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        now = self._now()
        new = insert(self._engine, rate_limits).values(key=key, count=amount,
                                                       expires_at=now + expiry)
        ended = rate_limits.c.expires_at <= now
        stmt = new.on_conflict_do_update(
            index_elements=["key"],
            set_={
                "count": case((ended, new.excluded.count),
                              else_=rate_limits.c.count + new.excluded.count),
                "expires_at": case((ended, new.excluded.expires_at),
                                   else_=rate_limits.c.expires_at),
            },
        ).returning(rate_limits.c.count)
        async with single_statement(self._engine, "counting a rate limit") as conn:
            count: int = (await conn.execute(stmt)).scalar_one()
        return count

    async def get(self, key: str) -> int:
        query = select(rate_limits.c.count).where(
            rate_limits.c.key == key, rate_limits.c.expires_at > self._now()
        )
        async with single_statement(self._engine, "reading a rate limit") as conn:
            count: int | None = (await conn.execute(query)).scalar_one_or_none()
        return count or 0

    async def get_expiry(self, key: str) -> float:
        now = self._now()
        query = select(rate_limits.c.expires_at).where(rate_limits.c.key == key)
        async with single_statement(self._engine, "reading a rate limit") as conn:
            expires: float | None = (await conn.execute(query)).scalar_one_or_none()
        return expires if expires is not None and expires > now else now

    async def check(self) -> bool:
        try:
            async with single_statement(self._engine, "checking the rate limits") as conn:
                await conn.execute(text("SELECT 1"))
        except StorageError:
            return False
        return True

    async def reset(self) -> int | None:
        async with single_statement(self._engine, "resetting the rate limits") as conn:
            return (await conn.execute(delete(rate_limits))).rowcount

    async def clear(self, key: str) -> None:
        async with single_statement(self._engine, "clearing a rate limit") as conn:
            await conn.execute(delete(rate_limits).where(rate_limits.c.key == key))

    async def forget_ended(self) -> int:
        """Drop the counters of windows that have ended (people who stopped writing)."""
        stmt = delete(rate_limits).where(rate_limits.c.expires_at <= self._now())
        async with single_statement(self._engine, "forgetting ended rate limits") as conn:
            return (await conn.execute(stmt)).rowcount
