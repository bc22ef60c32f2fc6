"""`InboxBacklog` on SQL: what waits in the inbox, for the metrics scrape. One grouped
read over the unfinished statuses (the `status, lease_until` index finds them; finished
items, the bulk of the table, are never visited), outside the writer's queue."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.sql.engine import single_statement
from adapters.sql.tables import inbox
from core.inbox import Backlog, ItemStatus

UNFINISHED: tuple[ItemStatus, ...] = ("pending", "processing", "answered")


class SqlInboxBacklog:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def read(self) -> Backlog:
        query = (
            select(inbox.c.status, func.count(), func.min(inbox.c.created_at))
            .where(inbox.c.status.in_(UNFINISHED))
            .group_by(inbox.c.status)
        )
        async with single_statement(self._engine, "reading the inbox backlog") as conn:
            rows = (await conn.execute(query)).all()
        counts: dict[ItemStatus, int] = dict.fromkeys(UNFINISHED, 0)
        oldest = None
        for status, count, first in rows:
            counts[status] = count
            if status == "pending":
                oldest = first
        return Backlog(by_status=counts, oldest_pending=oldest)
