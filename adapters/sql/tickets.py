"""`TicketStore` on SQL."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Row, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from adapters.sql.engine import transaction, uninterrupted
from adapters.sql.tables import ticket_comments, tickets
from adapters.sql.types import utcnow
from core.errors import NotFound
from core.messages import ConversationRef
from core.tickets.model import Comment, NewTicket, Ticket, TicketStatus


class SqlTicketStore:
    def __init__(self, engine: AsyncEngine, *, now: Callable[[], datetime] = utcnow) -> None:
        self._engine = engine
        self._now = now
        self._inflight: set[asyncio.Task[Any]] = set()

    @uninterrupted
    async def create(self, draft: NewTicket) -> Ticket:
        now = self._now()
        origin = draft.origin
        values = {
            "title": draft.title, "description": draft.description,
            "priority": draft.priority, "status": "open", "requester": draft.requester,
            "requester_name": draft.requester_name,
            "origin_channel": origin.channel if origin else None,
            "origin_tenant": origin.tenant if origin else None,
            "origin_conversation": origin.conversation if origin else None,
            "origin_thread": origin.thread if origin else None,
            "origin_link": draft.origin_link, "assignee": None,
            "created_at": now, "updated_at": now,
        }
        async with transaction(self._engine, "creating a ticket") as conn:
            result = await conn.execute(insert(tickets).values(**values).returning(tickets.c.id))
            ticket_id = int(result.scalar_one())
            return await self._read(conn, ticket_id)  # type: ignore[return-value]

    @uninterrupted
    async def get(self, ticket_id: int) -> Ticket | None:
        async with transaction(self._engine, f"reading ticket {ticket_id}") as conn:
            return await self._read(conn, ticket_id)

    @uninterrupted
    async def list(
        self, *, requester: str | None, statuses: Sequence[TicketStatus], limit: int
    ) -> list[Ticket]:
        query = (
            select(tickets).where(tickets.c.status.in_(list(statuses)))
            .order_by(tickets.c.updated_at.desc(), tickets.c.id.desc()).limit(limit)
        )
        if requester is not None:
            query = query.where(tickets.c.requester == requester)
        async with transaction(self._engine, "listing tickets") as conn:
            return [to_ticket(row, ()) for row in await conn.execute(query)]

    @uninterrupted
    async def update(
        self, ticket_id: int, *, status: TicketStatus | None = None,
        assignee: str | None = None, clear_assignee: bool = False,
    ) -> Ticket:
        values: dict[str, Any] = {"updated_at": self._now()}
        if status is not None:
            values["status"] = status
        if assignee is not None or clear_assignee:
            values["assignee"] = assignee
        async with transaction(self._engine, f"updating ticket {ticket_id}") as conn:
            result = await conn.execute(
                update(tickets).where(tickets.c.id == ticket_id).values(**values)
            )
            if result.rowcount != 1:
                raise NotFound(f"ticket {ticket_id}")
            ticket = await self._read(conn, ticket_id)
        assert ticket is not None
        return ticket

    @uninterrupted
    async def add_comment(
        self, ticket_id: int, *, author: str, author_name: str | None, text: str
    ) -> Ticket:
        now = self._now()
        async with transaction(self._engine, f"commenting on ticket {ticket_id}") as conn:
            await conn.execute(insert(ticket_comments).values(
                ticket_id=ticket_id, author=author, author_name=author_name, text=text,
                created_at=now,
            ))
            await conn.execute(
                update(tickets).where(tickets.c.id == ticket_id).values(updated_at=now)
            )
            ticket = await self._read(conn, ticket_id)
        assert ticket is not None
        return ticket

    async def _read(self, conn: AsyncConnection, ticket_id: int) -> Ticket | None:
        row = (await conn.execute(select(tickets).where(tickets.c.id == ticket_id))).first()
        if row is None:
            return None
        comments = await conn.execute(
            select(ticket_comments).where(ticket_comments.c.ticket_id == ticket_id)
            .order_by(ticket_comments.c.id)
        )
        return to_ticket(row, tuple(
            Comment(author=c.author, author_name=c.author_name, text=c.text,
                    created_at=c.created_at)
            for c in comments
        ))


def to_ticket(row: Row[Any], comments: tuple[Comment, ...]) -> Ticket:
    origin = None
    if row.origin_channel:
        origin = ConversationRef(
            channel=row.origin_channel, tenant=row.origin_tenant or "",
            conversation=row.origin_conversation or "", thread=row.origin_thread,
        )
    return Ticket(
        id=row.id, title=row.title, description=row.description, priority=row.priority,
        status=row.status, requester=row.requester, requester_name=row.requester_name,
        origin=origin, origin_link=row.origin_link, assignee=row.assignee,
        created_at=row.created_at, updated_at=row.updated_at, comments=comments,
    )
