"""`Inbox` on SQL: the units of work of the answer path, run by an executor (SQLite's
writer thread, or PostgreSQL's async engine), each in one transaction."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from datetime import datetime

from adapters.sql import units
from adapters.sql.engine import Executor
from adapters.sql.types import utcnow
from core.inbox import Acceptance, AcceptOutcome, Claim, InboxItem, TurnEnd, TurnStart
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

    async def note_reply(self, item_id: int, reply_id: str) -> None:
        unit = functools.partial(units.note_reply, item_id=item_id, reply_id=reply_id,
                                 now=self._now())
        await self._run(unit, f"noting the reply to item {item_id}")

    async def finish_delivery(self, item_id: int, *, owner: str) -> bool:
        unit = functools.partial(units.finish_delivery, item_id=item_id, owner=owner,
                                 now=self._now())
        return await self._run(unit, f"marking item {item_id} delivered")

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

    async def answer_of(self, item_id: int) -> Turn | None:
        unit = functools.partial(units.answer_of, item_id=item_id)
        return await self._run(unit, f"reading the answer to item {item_id}")
