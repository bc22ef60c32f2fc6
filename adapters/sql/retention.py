"""Retention: rows older than a cutoff are deleted in bounded batches, each batch one unit
of work (one short transaction), so a first purge of years of history never holds the
database's write lock for long and a crash mid-way loses nothing but time.

What goes: turns (with their feedback and sent-message records), then conversations left
without turns, finished inbox items (done, failed), delivery ids, conversation references
no unclosed ticket needs, closed tickets (with their comments) and rate-limit windows
that ended. What stays, whatever
its age: inbox items still waiting or being answered (and the turns they wrote), tickets
not closed, and profiles (updated only when a person's details change, so their age says
nothing about activity).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Delete,
    Select,
    and_,
    delete,
    exists,
    func,
    not_,
    or_,
    select,
    tuple_,
)
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.sql.engine import Executor, single_statement
from adapters.sql.tables import (
    conversation_references,
    conversations,
    deliveries,
    feedback,
    inbox,
    rate_limits,
    sent_messages,
    tickets,
    turns,
)

# In the order a batch deletes them: what refers to a row goes before it.
KINDS = ("feedback", "sent_messages", "turns", "conversations", "inbox", "deliveries",
         "conversation_references", "tickets", "rate_limits")
FINISHED = ("done", "failed")
DEFAULT_BATCH = 500  # rows per table per transaction
# Workers on one PostgreSQL database take turns: one purges, the others skip that hour.
LOCK_KEY = "switchboard:retention"


@dataclass(frozen=True, kw_only=True, slots=True)
class PurgeResult:
    counts: dict[str, int]  # kind → rows purged (or, for a dry run, to purge)
    busy: bool = False  # another process was purging: this one stopped early

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def _expired_turns(cutoff: datetime) -> ColumnElement[bool]:
    # A turn written by an item still waiting or being answered is part of that answer.
    unfinished = exists().where(inbox.c.id == turns.c.inbox_item_id,
                                inbox.c.status.not_in(FINISHED))
    return and_(turns.c.created_at < cutoff, not_(unfinished))


def _expired_turn_ids(cutoff: datetime) -> Select[Any]:
    return select(turns.c.id).where(_expired_turns(cutoff))


def _criteria(cutoff: datetime, *, dry_run: bool) -> dict[str, ColumnElement[bool]]:
    doomed_turn = _expired_turn_ids(cutoff)
    if dry_run:
        # Nothing is deleted yet: a conversation goes when no turn of it would stay.
        stays = exists().where(turns.c.conversation_id == conversations.c.id,
                               not_(_expired_turns(cutoff)))
    else:
        # Its turns went earlier in this batch or an earlier one.
        stays = exists().where(turns.c.conversation_id == conversations.c.id)
    unclosed_ticket_there = exists().where(
        tickets.c.status != "closed",
        tickets.c.origin_channel == conversation_references.c.channel,
        tickets.c.origin_tenant == conversation_references.c.tenant,
        tickets.c.origin_conversation == conversation_references.c.conversation,
    )
    return {
        "feedback": or_(feedback.c.updated_at < cutoff, feedback.c.turn_id.in_(doomed_turn)),
        "sent_messages": or_(sent_messages.c.created_at < cutoff,
                             sent_messages.c.turn_id.in_(doomed_turn)),
        "turns": _expired_turns(cutoff),
        "conversations": and_(conversations.c.updated_at < cutoff, not_(stays)),
        "inbox": and_(inbox.c.status.in_(FINISHED), inbox.c.updated_at < cutoff),
        "deliveries": deliveries.c.received_at < cutoff,
        "conversation_references": and_(conversation_references.c.updated_at < cutoff,
                                        not_(unclosed_ticket_there)),
        "tickets": and_(tickets.c.status == "closed", tickets.c.updated_at < cutoff),
        # Rate-limit windows (keyed by person) that ended before the cutoff.
        "rate_limits": rate_limits.c.expires_at < cutoff.timestamp(),
    }


_TABLES = {
    "feedback": feedback, "sent_messages": sent_messages, "turns": turns,
    "conversations": conversations, "inbox": inbox, "deliveries": deliveries,
    "conversation_references": conversation_references, "tickets": tickets,
    "rate_limits": rate_limits,
}


def _bounded_delete(kind: str, where: ColumnElement[bool], limit: int) -> Delete:
    """DELETE … WHERE key IN (SELECT key … LIMIT n): both databases, no DELETE … LIMIT."""
    table = _TABLES[kind]
    key = list(table.primary_key.columns)
    some = select(*key).where(where).limit(limit)
    if len(key) == 1:
        return delete(table).where(key[0].in_(some))
    return delete(table).where(tuple_(*key).in_(some))


def purge_batch(conn: Connection, *, cutoff: datetime, limit: int) -> dict[str, int] | None:
    """Delete up to `limit` expired rows of each kind; None when another process holds
    the purge (PostgreSQL; SQLite has one writer anyway)."""
    if conn.dialect.name == "postgresql" and not _take_purge_lock(conn):
        return None
    counts = {}
    for kind, where in _criteria(cutoff, dry_run=False).items():
        counts[kind] = conn.execute(_bounded_delete(kind, where, limit)).rowcount
    return counts


def _count_query(cutoff: datetime) -> Select[Any]:
    """What `purge` would delete now, per kind, as one statement (one snapshot)."""
    return select(*(
        select(func.count()).select_from(_TABLES[kind]).where(where)
        .scalar_subquery().label(kind)
        for kind, where in _criteria(cutoff, dry_run=True).items()
    ))


async def count_expired(engine: AsyncEngine, cutoff: datetime) -> dict[str, int]:
    """Read apart from the units of work: on SQLite a lone statement reads beside the
    one writer (WAL) instead of holding it up while it scans."""
    async with single_statement(engine, "counting expired rows") as conn:
        row = (await conn.execute(_count_query(cutoff))).one()
    return {kind: int(row._mapping[kind]) for kind in KINDS}


def _take_purge_lock(conn: Connection) -> bool:
    from adapters.sql.locks import lock_id  # PostgreSQL only

    # Transaction-scoped: released by this batch's COMMIT or ROLLBACK, even in a crash.
    query = select(func.pg_try_advisory_xact_lock(lock_id(LOCK_KEY)))
    return bool(conn.execute(query).scalar_one())


async def purge(
    executor: Executor, engine: AsyncEngine, cutoff: datetime, *,
    batch: int = DEFAULT_BATCH, dry_run: bool = False,
    on_batch: Callable[[dict[str, int]], None] | None = None,
) -> PurgeResult:
    """Everything older than `cutoff`. Counted first (`engine`, outside the units), so an
    hour with nothing to purge costs the writer nothing; then batch after batch until one
    deletes less than a full batch of every kind: each kind then took all it matched, and
    what one kind's deletion makes eligible (a conversation without turns) comes later in
    the same batch."""
    counted = await count_expired(engine, cutoff)
    if dry_run or not any(counted.values()):
        return PurgeResult(counts=counted if dry_run else dict.fromkeys(KINDS, 0))
    totals = dict.fromkeys(KINDS, 0)
    unit = functools.partial(purge_batch, cutoff=cutoff, limit=batch)
    while True:
        counts = await executor.run(unit, "purging expired rows")
        if counts is None:
            return PurgeResult(counts=totals, busy=True)
        for kind, n in counts.items():
            totals[kind] += n
        if on_batch is not None:
            on_batch(counts)
        if all(n < batch for n in counts.values()):
            return PurgeResult(counts=totals)
