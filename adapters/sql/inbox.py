"""`Inbox` on SQL: every inbound message is one row, refused when delivered twice and
claimed by workers under a lease."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Row, Update, and_, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from adapters.sql.engine import insert, single_statement, transaction, uninterrupted
from adapters.sql.tables import inbox
from adapters.sql.types import utcnow
from core.inbox import Duplicate, InboxItem, Recorded, RecordOutcome, Requeued
from core.messages import InboundMessage, message_from_json, message_to_json

log = logging.getLogger(__name__)

_ERROR_LENGTH = inbox.c.last_error.type.length or 256
_NO_LEASE: dict[str, Any] = {"lease_owner": None, "lease_until": None}


class SqlInbox:
    def __init__(self, engine: AsyncEngine, *, now: Callable[[], datetime] = utcnow) -> None:
        self._engine = engine
        self._now = now
        self._inflight: set[asyncio.Task[Any]] = set()

    @uninterrupted
    async def record(
        self, message: InboundMessage, *, owner: str | None = None, lease: timedelta | None = None
    ) -> RecordOutcome:
        if (owner is None) != (lease is None):
            raise ValueError("record() claims with both an owner and a lease, or neither")
        now = self._now()
        key = {"channel": message.conversation.channel, "tenant": message.conversation.tenant,
               "message_key": message.id}
        claim = _claimed(owner, lease, now) if owner is not None and lease is not None else None
        first = {**claim, "attempts": 1} if claim else {"status": "pending", "attempts": 0}
        stmt = (
            insert(self._engine, inbox)
            .values(**key, **first, payload=message_to_json(message),
                    created_at=now, updated_at=now)
            .on_conflict_do_nothing(index_elements=list(key))
            .returning(inbox)
        )
        find = select(inbox).where(*(inbox.c[name] == value for name, value in key.items()))
        async with single_statement(self._engine, f"recording message {message.id}") as conn:
            row = (await conn.execute(stmt)).one_or_none()
        if row is not None:
            return Recorded(item=_item(row))
        async with transaction(self._engine, f"recording message {message.id} again") as conn:
            existing = (await conn.execute(find)).one()
            if existing.status == "failed":
                # Conditional, so two redeliveries racing re-queue the item once.
                again = claim or {"status": "pending", **_NO_LEASE}
                requeue = _set(existing.id, inbox.c.status == "failed", again, now)
                row = (await conn.execute(requeue.returning(inbox))).one_or_none()
                if row is not None:
                    return Requeued(item=_item(row))
                existing = (await conn.execute(find)).one()
        return Duplicate(item_id=existing.id, status=existing.status)

    @uninterrupted
    async def claim(self, *, owner: str, lease: timedelta, limit: int) -> list[InboxItem]:
        now = self._now()
        # SKIP LOCKED lets concurrent PostgreSQL claimers pass each other's candidates
        # (SQLite drops the clause; its transactions are serial). The conditional UPDATE
        # alone already guarantees that no item is claimed twice.
        candidates = (
            select(inbox.c.id).where(_claimable(now)).order_by(inbox.c.id).limit(limit)
            .with_for_update(skip_locked=True)
        )
        async with transaction(self._engine, f"claiming items for {owner}") as conn:
            ids = (await conn.scalars(candidates)).all()
            claimed = [await self._claim(conn, item_id, owner, lease, now) for item_id in ids]
        return [item for item in claimed if item is not None]

    @uninterrupted
    async def claim_item(self, item_id: int, *, owner: str, lease: timedelta) -> InboxItem | None:
        async with single_statement(self._engine, f"claiming item {item_id}") as conn:
            return await self._claim(conn, item_id, owner, lease, self._now())

    async def _claim(
        self, conn: AsyncConnection, item_id: int, owner: str, lease: timedelta, now: datetime
    ) -> InboxItem | None:
        stmt = _set(item_id, _claimable(now), _claimed(owner, lease, now), now)
        row = (await conn.execute(stmt.returning(inbox))).one_or_none()
        return None if row is None else _item(row)

    @uninterrupted
    async def renew(self, item_id: int, *, owner: str, lease: timedelta) -> bool:
        now = self._now()
        return await self._if_held(item_id, owner, "renew", {"lease_until": now + lease}, now)

    @uninterrupted
    async def complete(self, item_id: int, *, owner: str) -> None:
        await self._finish(item_id, owner, "complete", {"status": "done", **_NO_LEASE})

    @uninterrupted
    async def release(self, item_id: int, *, owner: str) -> None:
        # The attempt stays counted: it may have got as far as storing an answer, and a
        # later attempt must look for that before answering again.
        values = {"status": "pending", **_NO_LEASE}
        await self._finish(item_id, owner, "release", values)

    @uninterrupted
    async def fail(self, item_id: int, *, owner: str, error: str) -> None:
        values = {"status": "failed", "last_error": error[:_ERROR_LENGTH], **_NO_LEASE}
        await self._finish(item_id, owner, "fail", values)

    @uninterrupted
    async def get(self, item_id: int) -> InboxItem | None:
        async with single_statement(self._engine, f"reading item {item_id}") as conn:
            row = (await conn.execute(select(inbox).where(inbox.c.id == item_id))).one_or_none()
        return None if row is None else _item(row)

    @uninterrupted
    async def find(self, *, channel: str, tenant: str, message_id: str) -> InboxItem | None:
        query = select(inbox).where(
            inbox.c.channel == channel, inbox.c.tenant == tenant, inbox.c.message_key == message_id
        )
        async with single_statement(self._engine, f"finding message {message_id}") as conn:
            row = (await conn.execute(query)).one_or_none()
        return None if row is None else _item(row)

    async def _finish(self, item_id: int, owner: str, action: str, values: dict[str, Any]) -> None:
        if not await self._if_held(item_id, owner, action, values, self._now()):
            # Its lease expired and another worker took it over: that one answers.
            log.warning("inbox item %s: %s by %s ignored, it no longer holds the lease",
                        item_id, action, owner)

    async def _if_held(
        self, item_id: int, owner: str, action: str, values: dict[str, Any], now: datetime
    ) -> bool:
        held = and_(inbox.c.status == "processing", inbox.c.lease_owner == owner)
        async with single_statement(self._engine, f"{action} item {item_id}") as conn:
            return (await conn.execute(_set(item_id, held, values, now))).rowcount == 1


def _claimable(now: datetime) -> ColumnElement[bool]:
    expired = and_(inbox.c.status == "processing", inbox.c.lease_until < now)
    return or_(inbox.c.status == "pending", expired)


def _claimed(owner: str, lease: timedelta, now: datetime) -> dict[str, Any]:
    return {"status": "processing", "lease_owner": owner, "lease_until": now + lease,
            "attempts": inbox.c.attempts + 1}


def _set(
    item_id: int, condition: ColumnElement[bool], values: dict[str, Any], now: datetime
) -> Update:
    return update(inbox).where(inbox.c.id == item_id, condition).values(**values, updated_at=now)


def _item(row: Row[Any]) -> InboxItem:
    return InboxItem(
        id=row.id,
        message=message_from_json(row.payload),
        status=row.status,
        attempts=row.attempts,
        lease_until=row.lease_until,
        last_error=row.last_error,
    )
