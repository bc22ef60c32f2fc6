"""`ProfileStore` on SQL: one row per sender, merged as channels learn more."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.sql.engine import insert, single_statement, transaction, uninterrupted
from adapters.sql.rows import profile_values, to_profile
from adapters.sql.tables import profiles
from adapters.sql.types import utcnow
from core.profiles import Profile


class SqlProfileStore:
    def __init__(self, engine: AsyncEngine, *, now: Callable[[], datetime] = utcnow) -> None:
        self._engine = engine
        self._now = now
        self._inflight: set[asyncio.Task[Any]] = set()

    @uninterrupted
    async def get(self, sender_id: str) -> Profile | None:
        query = select(profiles).where(profiles.c.id == sender_id)
        async with single_statement(self._engine, f"reading profile {sender_id}") as conn:
            row = (await conn.execute(query)).one_or_none()
        return None if row is None else to_profile(row)

    @uninterrupted
    async def upsert(self, profile: Profile) -> Profile:
        now = self._now()
        stmt = (
            insert(self._engine, profiles)
            .values({**profile_values(profile), "id": profile.id, "updated_at": now})
            .on_conflict_do_nothing(index_elements=["id"])
        )
        # The row lock (PostgreSQL; SQLite's BEGIN IMMEDIATE serialises anyway) makes
        # concurrent upserts merge one after the other instead of losing fields.
        stored = select(profiles).where(profiles.c.id == profile.id).with_for_update()
        async with transaction(self._engine, f"saving profile {profile.id}") as conn:
            if (await conn.execute(stmt)).rowcount == 1:
                return profile
            merged = to_profile((await conn.execute(stored)).one()).merged(profile)
            await conn.execute(
                update(profiles)
                .where(profiles.c.id == profile.id)
                .values({**profile_values(merged), "updated_at": now})
            )
        return merged

