"""`FeedbackStore` on SQL: one rating per person and answer, changed by rating again."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.sql.engine import insert, transaction, uninterrupted
from adapters.sql.tables import conversations, feedback, turns
from adapters.sql.types import utcnow
from core.feedback import Feedback, Rating

_COMMENT_LENGTH = 2000


class SqlFeedbackStore:
    def __init__(self, engine: AsyncEngine, *, now: Callable[[], datetime] = utcnow) -> None:
        self._engine = engine
        self._now = now
        self._inflight: set[asyncio.Task[Any]] = set()

    @uninterrupted
    async def record(self, rating: Feedback) -> bool:
        where = rating.where
        # The rated turn must be an answer in the conversation the rating came from:
        # a button's value is only as trustworthy as the message it was found on.
        answer = select(turns.c.id).join(conversations).where(
            turns.c.id == rating.turn_id,
            turns.c.role == "assistant",
            conversations.c.channel == where.channel,
            conversations.c.tenant == where.tenant,
            conversations.c.external_id == where.conversation,
            conversations.c.thread_id == (where.thread or ""),
        )
        now = self._now()
        values = {"rating": rating.rating, "updated_at": now,
                  "comment": rating.comment[:_COMMENT_LENGTH] if rating.comment else None}
        stmt = (
            insert(self._engine, feedback)
            .values(turn_id=rating.turn_id, rater=rating.rater, created_at=now, **values)
            .on_conflict_do_update(index_elements=["turn_id", "rater"], set_=values)
        )
        async with transaction(self._engine, f"recording feedback on turn {rating.turn_id}") as conn:
            if (await conn.execute(answer)).one_or_none() is None:
                return False
            await conn.execute(stmt)
        return True

    @uninterrupted
    async def given_by(self, rater: str, turn_ids: Sequence[int]) -> dict[int, Rating]:
        if not turn_ids:
            return {}
        query = select(feedback.c.turn_id, feedback.c.rating).where(
            feedback.c.rater == rater, feedback.c.turn_id.in_(sorted(set(turn_ids)))
        )
        async with transaction(self._engine, "reading a person's ratings") as conn:
            return {row.turn_id: row.rating for row in await conn.execute(query)}

    @uninterrupted
    async def ratings(self, turn_id: int) -> dict[str, str]:
        """rater → rating for one turn (for tests and reports)."""
        query = select(feedback.c.rater, feedback.c.rating).where(feedback.c.turn_id == turn_id)
        async with transaction(self._engine, f"reading feedback on turn {turn_id}") as conn:
            return {row.rater: row.rating for row in await conn.execute(query)}
