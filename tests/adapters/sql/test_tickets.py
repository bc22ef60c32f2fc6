"""Tickets in SQL, on SQLite and PostgreSQL: numbers unique under concurrency, comments,
status, listing by requester."""

from __future__ import annotations

import asyncio

from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.sql.tickets import SqlTicketStore
from core.messages import ConversationRef
from core.tickets.model import NewTicket

ORIGIN = ConversationRef(channel="slack", tenant="T1", conversation="C1", thread="1.000")


def draft(title: str, requester: str = "slack:T1:U1") -> NewTicket:
    return NewTicket(title=title, description="d", priority="high", requester=requester,
                     requester_name="Ada", origin=ORIGIN, origin_link="https://x/1")


async def test_tickets_created_at_once_get_distinct_numbers(engine: AsyncEngine) -> None:
    store = SqlTicketStore(engine)

    created = await asyncio.gather(*(store.create(draft(f"t{n}")) for n in range(10)))

    assert len({t.number for t in created}) == 10
    assert all(t.number.startswith("TCK-1") for t in created)
    assert created[0].origin == ORIGIN and created[0].status == "open"


async def test_comments_status_and_listing(engine: AsyncEngine) -> None:
    store = SqlTicketStore(engine)
    mine = await store.create(draft("printer"))
    await store.create(draft("other", requester="slack:T1:U2"))

    commented = await store.add_comment(mine.id, author="slack:T1:U1", author_name="Ada",
                                        text="still broken")
    closed = await store.update(mine.id, status="closed")

    assert [c.text for c in commented.comments] == ["still broken"]
    assert closed.status == "closed" and closed.comments == commented.comments
    assert await store.list(requester="slack:T1:U1", statuses=["open"], limit=10) == []
    everyone = await store.list(requester=None, statuses=["open", "closed"], limit=10)
    assert {t.title for t in everyone} == {"printer", "other"}
    assert await store.get(99999) is None
