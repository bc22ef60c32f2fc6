"""Sources kept in SQL: what `switchboard source` adds, what SWITCHBOARD_SOURCES declares,
and who syncs which when.

Each source has a `next_run_at`; a process that owns an index claims a due one by setting
a lease in one conditional UPDATE (the same statement on SQLite and PostgreSQL: of two
processes asking at once, one gets the row and the other none), renews the lease while
the sync runs, and clears it with the outcome. A process that dies mid-sync leaves a
lease that runs out, and the next process takes the source over.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import Row, and_, case, delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.sql.engine import insert, single_statement, transaction
from adapters.sql.tables import sources
from adapters.sql.types import utcnow
from core.sources import (
    DeclaredSource,
    Origin,
    RunCounts,
    RunResult,
    SourceAccess,
    SourceRecord,
)

Removal = Literal["removed", "missing", "environment"]
ERROR_MAX = 1000  # characters of a run's error kept


class SqlSourceStore:
    def __init__(self, engine: AsyncEngine, *, now: Callable[[], datetime] = utcnow) -> None:
        self._engine = engine
        self._now = now

    async def add(self, source: DeclaredSource) -> int | None:
        """The new source's id, due at once; None if that path is a source already."""
        now = self._now()
        statement = insert(self._engine, sources).on_conflict_do_nothing(
            index_elements=["origin", "path"]
        ).returning(sources.c.id)
        async with transaction(self._engine, "adding a source") as conn:
            row = (await conn.execute(statement, _definition(source, "cli", now))).first()
        return None if row is None else int(row[0])

    async def remove(self, source_id: int) -> Removal:
        """Only what `add` made: a declared source goes when SWITCHBOARD_SOURCES drops it."""
        async with transaction(self._engine, "removing a source") as conn:
            origin = (await conn.execute(
                select(sources.c.origin).where(sources.c.id == source_id)
            )).scalar_one_or_none()
            if origin is None:
                return "missing"
            if origin == "env":
                return "environment"
            await conn.execute(delete(sources).where(sources.c.id == source_id))
        return "removed"

    async def declare(self, declared: Sequence[DeclaredSource]) -> None:
        """Make the environment's sources these: new ones due at once, a changed interval
        taken, those no longer declared dropped (with their history)."""
        now = self._now()
        wanted = {source.path: source for source in declared}
        async with transaction(self._engine, "declaring sources") as conn:
            rows = (await conn.execute(
                select(sources.c.id, sources.c.path, sources.c.interval_seconds)
                .where(sources.c.origin == "env")
            )).all()
            kept = {path: (id_, interval) for id_, path, interval in rows}
            gone = [id_ for path, (id_, _) in kept.items() if path not in wanted]
            if gone:
                await conn.execute(delete(sources).where(sources.c.id.in_(gone)))
            for path, source in wanted.items():
                if path not in kept:
                    await conn.execute(insert(self._engine, sources).on_conflict_do_nothing(
                        index_elements=["origin", "path"]
                    ), _definition(source, "env", now))
                elif kept[path][1] != source.interval:
                    await conn.execute(update(sources).where(sources.c.id == kept[path][0])
                                       .values(interval_seconds=source.interval))

    async def list(self) -> list[SourceRecord]:
        now = self._now()
        async with single_statement(self._engine, "listing sources") as conn:
            rows = (await conn.execute(select(sources).order_by(sources.c.id))).all()
        return [_record(row, now) for row in rows]

    async def claim(self, owner: str, lease: timedelta) -> SourceRecord | None:
        """The most overdue source no process holds, now held by `owner`; None if none is
        due. Call again for the next one."""
        now = self._now()
        free = or_(sources.c.lease_until.is_(None), sources.c.lease_until < now)
        due = and_(sources.c.next_run_at <= now, free)
        oldest = select(sources.c.id).where(due).order_by(sources.c.next_run_at).limit(1)
        # The conditions again on the row itself: PostgreSQL re-checks them on the newest
        # version after waiting for another claimer's row lock, which then fails them.
        statement = (
            update(sources).where(sources.c.id == oldest.scalar_subquery(), due)
            .values(lease_owner=owner, lease_until=now + lease, last_started_at=now)
            .returning(*sources.c)
        )
        async with single_statement(self._engine, "claiming a source") as conn:
            row = (await conn.execute(statement)).first()
        return None if row is None else _record(row, now)

    async def renew(self, source_id: int, owner: str, lease: timedelta) -> bool:
        """False when `owner` no longer holds it (its lease ran out and another took it)."""
        statement = (
            update(sources).where(sources.c.id == source_id, sources.c.lease_owner == owner)
            .values(lease_until=self._now() + lease)
        )
        async with single_statement(self._engine, "renewing a source's lease") as conn:
            return bool((await conn.execute(statement)).rowcount)

    async def finish(self, source_id: int, owner: str, result: RunResult) -> None:
        """Record the run, due again one interval after it ended; the lease is let go."""
        counts = dataclasses.asdict(result.counts) if result.counts is not None else None
        error = result.error[:ERROR_MAX] if result.error is not None else None
        interval = select(sources.c.interval_seconds).where(sources.c.id == source_id)
        async with transaction(self._engine, "recording a source's run") as conn:
            seconds = (await conn.execute(interval)).scalar_one_or_none()
            if seconds is None:  # removed while it ran
                return
            await conn.execute(
                update(sources).where(sources.c.id == source_id)
                .values(last_finished_at=result.finished_at, last_outcome=result.outcome,
                        last_error=error, last_counts=counts,
                        next_run_at=result.finished_at + timedelta(seconds=seconds),
                        **_released(sources.c.lease_owner == owner))
            )

    async def release(self, source_id: int, owner: str) -> None:
        """Let go without a result (the process is stopping): due again at once."""
        statement = (
            update(sources).where(sources.c.id == source_id, sources.c.lease_owner == owner)
            .values(lease_owner=None, lease_until=None, next_run_at=self._now())
        )
        async with single_statement(self._engine, "releasing a source") as conn:
            await conn.execute(statement)

    async def sync_now(self, source_id: int | None = None) -> int:
        """Make one source (or all) due at once; how many there were."""
        statement = update(sources).values(next_run_at=self._now())
        if source_id is not None:
            statement = statement.where(sources.c.id == source_id)
        async with single_statement(self._engine, "asking for a sync") as conn:
            return int((await conn.execute(statement)).rowcount)

    async def next_due(self) -> datetime | None:
        """When the next source no process holds is due (to sleep until then)."""
        query = select(func.min(sources.c.next_run_at)).where(sources.c.lease_owner.is_(None))
        async with single_statement(self._engine, "reading when sources are due") as conn:
            found: datetime | None = (await conn.execute(query)).scalar_one()
        return found


def _released(still_ours: Any) -> dict[str, Any]:
    """Clear the lease only if it is still ours: a process that took over after our lease
    ran out holds it now, and keeps it."""
    return {
        "lease_owner": case((still_ours, None), else_=sources.c.lease_owner),
        "lease_until": case((still_ours, None), else_=sources.c.lease_until),
    }


def _definition(source: DeclaredSource, origin: Origin, now: datetime) -> dict[str, Any]:
    access = source.access
    return {
        "origin": origin, "path": source.path, "interval_seconds": source.interval,
        "access": {"visibility": access.visibility, "users": list(access.users),
                   "groups": list(access.groups), "channels": list(access.channels),
                   "source_url_prefix": access.source_url_prefix},
        "created_at": now, "next_run_at": now,
    }


def _record(row: Row[Any], now: datetime) -> SourceRecord:
    m = row._mapping
    a = m["access"]
    access = SourceAccess(visibility=a.get("visibility"), users=tuple(a.get("users", ())),
                          groups=tuple(a.get("groups", ())),
                          channels=tuple(a.get("channels", ())),
                          source_url_prefix=a.get("source_url_prefix"))
    last = None
    if m["last_outcome"] is not None:
        counts = RunCounts(**m["last_counts"]) if m["last_counts"] is not None else None
        last = RunResult(outcome=m["last_outcome"], finished_at=m["last_finished_at"],
                         counts=counts, error=m["last_error"])
    return SourceRecord(
        id=m["id"], origin=m["origin"],
        declared=DeclaredSource(path=m["path"], interval=m["interval_seconds"], access=access),
        next_run_at=m["next_run_at"],
        running=m["lease_until"] is not None and m["lease_until"] >= now,
        last_started_at=m["last_started_at"], last=last,
    )
