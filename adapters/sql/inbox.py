"""`Inbox` on SQL: the units of work of the answer path, run by an executor (SQLite's
writer thread, or PostgreSQL's async engine), each in one transaction.

The two bookkeeping writes of a delivery (the message showing an answer, and its
delivery) are coalesced: while one such unit runs, the calls that arrive meanwhile wait
and go together into the next, so under load they cost one transaction for many answers
(and nothing extra when idle)."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Generic, TypeVar

from adapters.sql import units
from adapters.sql.engine import Executor
from adapters.sql.types import utcnow
from core.inbox import (
    Acceptance,
    AcceptOutcome,
    Claim,
    InboxItem,
    ItemStatus,
    TurnEnd,
    TurnStart,
)
from core.threads import NewTurn, Turn


class SqlInbox:
    def __init__(
        self,
        executor: Executor,
        *,
        count: Callable[[NewTurn], int] = lambda turn: 0,
        history: int = 100,
        max_attempts: int = 3,
        now: Callable[[], datetime] = utcnow,
    ) -> None:
        """`count`: the tokens of a turn, stored with it; `history`: earlier turns a
        started item comes with; `max_attempts`: past this, a claimed item is Exhausted."""
        self._run = executor.run
        self._notes = _Coalesced(self._note_replies)
        self._deliveries = _Coalesced(self._finish_deliveries)
        self._count = count
        self._history = history
        self._max_attempts = max_attempts
        self._now = now

    async def accept(self, acceptance: Acceptance) -> AcceptOutcome:
        unit = functools.partial(units.accept, acceptance=acceptance, now=self._now())
        return await self._run(unit, f"recording message {acceptance.message.id}")

    async def begin_turns(self, claim: Claim, *, limit: int) -> list[TurnStart]:
        unit = self._begin(claim, limit=limit)
        return await self._run(unit, f"claiming items for {claim.owner}")

    async def begin_turn(self, item_id: int, claim: Claim) -> TurnStart | None:
        unit = self._begin(claim, limit=1, item_id=item_id)
        started = await self._run(unit, f"claiming item {item_id}")
        return started[0] if started else None

    def _begin(
        self, claim: Claim, *, limit: int, item_id: int | None = None
    ) -> Callable[..., list[TurnStart]]:
        return functools.partial(
            units.begin_turns, claim=claim, now=self._now(), limit=limit, item_id=item_id,
            max_attempts=self._max_attempts, history=self._history, count=self._count,
        )

    async def finish_turn(self, end: TurnEnd) -> list[Turn]:
        unit = functools.partial(units.finish_turn, end=end, now=self._now())
        return await self._run(unit, f"storing the answer to item {end.item_id}")

    async def record_round(self, end: TurnEnd) -> list[Turn]:
        unit = functools.partial(units.record_round, end=end, now=self._now())
        return await self._run(unit, f"storing a tool round of item {end.item_id}")

    async def note_reply(self, item_id: int, reply_id: str, *, owner: str) -> bool:
        return await self._notes.add((item_id, reply_id, owner))

    async def _note_replies(
        self, notes: list[tuple[int, str, str]]
    ) -> set[tuple[int, str, str]]:
        unit = functools.partial(units.note_replies, notes=notes, now=self._now())
        kept: set[tuple[int, str, str]] = await self._run(
            unit, f"noting the replies to {len(notes)} items"
        )
        return kept

    async def finish_delivery(self, item_id: int, *, owner: str) -> bool:
        return await self._deliveries.add((item_id, owner))

    async def _finish_deliveries(self, held: list[tuple[int, str]]) -> set[tuple[int, str]]:
        unit = functools.partial(units.finish_deliveries, held=held, now=self._now())
        done: set[tuple[int, str]] = await self._run(
            unit, f"marking {len(held)} items delivered"
        )
        return done

    async def renew(self, item_ids: Sequence[int], claim: Claim) -> set[int]:
        unit = functools.partial(units.renew, item_ids=item_ids, claim=claim, now=self._now())
        return await self._run(unit, f"renewing {len(item_ids)} leases")

    async def release(self, item_id: int, *, owner: str) -> bool:
        unit = functools.partial(units.release, item_id=item_id, owner=owner, now=self._now())
        return await self._run(unit, f"releasing item {item_id}")

    async def fail(self, item_id: int, *, owner: str, error: str) -> bool:
        unit = functools.partial(
            units.fail, item_id=item_id, owner=owner, error=error, now=self._now()
        )
        return await self._run(unit, f"failing item {item_id}")

    async def get(self, item_id: int) -> InboxItem | None:
        return await self._run(
            functools.partial(units.get_item, item_id=item_id), f"reading item {item_id}"
        )

    async def find(self, *, channel: str, tenant: str, message_id: str) -> InboxItem | None:
        unit = functools.partial(
            units.find_item, channel=channel, tenant=tenant, message_id=message_id
        )
        return await self._run(unit, f"finding message {message_id}")

    async def request_stop(self, item_id: int, *, by: str) -> ItemStatus | None:
        unit = functools.partial(units.request_stop, item_id=item_id, by=by, now=self._now())
        return await self._run(unit, f"stopping item {item_id}")

    async def stopped_among(self, item_ids: Sequence[int]) -> set[int]:
        unit = functools.partial(units.stopped_among, item_ids=item_ids)
        return await self._run(unit, f"reading the stops of {len(item_ids)} items")

    async def unfinished_in(self, conversation_id: str) -> InboxItem | None:
        unit = functools.partial(units.unfinished_in, conversation_id=conversation_id)
        return await self._run(unit, f"finding the unfinished item of {conversation_id}")

    async def answer_of(self, item_id: int) -> Turn | None:
        unit = functools.partial(units.answer_of, item_id=item_id)
        return await self._run(unit, f"reading the answer to item {item_id}")


K = TypeVar("K")


class _Coalesced(Generic[K]):
    """Calls of one kind that can share a unit of work. The first runs at once; those
    arriving while a unit runs gather for the next. Each caller learns whether its own
    key was among those the unit applied (or gets the unit's exception)."""

    def __init__(self, run: Callable[[list[K]], Awaitable[set[K]]]) -> None:
        self._run = run
        self._waiting: list[tuple[K, asyncio.Future[bool]]] = []
        self._busy = False
        self._drainer: asyncio.Task[None] | None = None  # kept: a task needs a reference

    async def add(self, key: K) -> bool:
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._waiting.append((key, future))
        if not self._busy:
            self._busy = True
            self._drainer = asyncio.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        try:
            while self._waiting:
                batch, self._waiting = self._waiting, []
                try:
                    applied = await self._run([key for key, _ in batch])
                except Exception as e:
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(e)
                    continue
                for key, future in batch:
                    if not future.done():
                        future.set_result(key in applied)
        finally:
            self._busy = False
