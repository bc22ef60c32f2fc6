"""Retention on SQLite and PostgreSQL: what is older than the cutoff goes, in bounded
batches, and work still in progress or tickets still open never do."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.sql import retention
from adapters.sql.engine import Executor
from adapters.sql.locks import lock_id
from adapters.sql.tables import conversations, inbox, ticket_comments, tickets, turns
from tests.adapters.sql.conftest import Database
from tests.adapters.sql.history import RETENTION, seed_history

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
CUTOFF = NOW - RETENTION


async def _rows(engine: AsyncEngine, query: object) -> list[object]:
    async with engine.connect() as conn:
        return list((await conn.execute(query)).scalars())  # type: ignore[call-overload]


async def test_purge_deletes_what_is_older_than_the_cutoff_and_keeps_the_rest(
    engine: AsyncEngine, executor: Executor
) -> None:
    history = await seed_history(engine, NOW)

    result = await retention.purge(executor, engine, CUTOFF)

    assert not result.busy
    assert result.counts == history.expected
    left = set(await _rows(engine, select(conversations.c.id)))
    assert left == {history.long_conversation, history.waiting_conversation}
    assert set(await _rows(engine, select(turns.c.id))) == history.kept_turns
    statuses = sorted(await _rows(engine, select(inbox.c.status)))  # type: ignore[type-var]
    assert statuses == ["done", "pending", "processing"]  # yesterday's, and the unfinished
    titles = set(await _rows(engine, select(tickets.c.title)))
    assert titles == {"Open for ages", "Closed yesterday"}
    assert await _rows(engine, select(ticket_comments.c.id)) == []
    # Purging again finds nothing, and costs the writer nothing to find it.
    ran = executor.units["purging"]
    assert (await retention.purge(executor, engine, CUTOFF)).total == 0
    assert executor.units["purging"] == ran


async def test_a_dry_run_counts_what_a_purge_deletes_and_deletes_nothing(
    engine: AsyncEngine, executor: Executor
) -> None:
    history = await seed_history(engine, NOW)

    counted = await retention.purge(executor, engine, CUTOFF, dry_run=True)

    assert counted.counts == history.expected
    assert (await retention.purge(executor, engine, CUTOFF)).counts == history.expected


async def test_each_transaction_deletes_at_most_one_batch_per_kind(
    engine: AsyncEngine, executor: Executor
) -> None:
    history = await seed_history(engine, NOW)
    batches: list[dict[str, int]] = []

    result = await retention.purge(executor, engine, CUTOFF, batch=1, on_batch=batches.append)

    assert result.counts == history.expected
    assert all(n <= 1 for counts in batches for n in counts.values())
    assert len(batches) > 2 and not any(batches[-1].values())


async def test_a_purge_smaller_than_a_batch_takes_one_transaction(
    engine: AsyncEngine, executor: Executor
) -> None:
    history = await seed_history(engine, NOW)
    batches: list[dict[str, int]] = []

    result = await retention.purge(executor, engine, CUTOFF, batch=100, on_batch=batches.append)

    assert batches == [history.expected] and result.counts == history.expected


@pytest.mark.parametrize("backend", [pytest.param("postgres", marks=pytest.mark.postgres)])
async def test_a_second_process_skips_while_another_purges(
    database: Database, engine: AsyncEngine, executor: Executor
) -> None:
    await seed_history(engine, NOW)
    other = database.engine()
    async with other.connect() as conn:
        # Another worker's purge holds the lock (a session lock here, for the test's length).
        await conn.execute(text("SELECT pg_advisory_lock(:key)"),
                           {"key": lock_id(retention.LOCK_KEY)})
        skipped = await retention.purge(executor, engine, CUTOFF)
        await conn.execute(text("SELECT pg_advisory_unlock(:key)"),
                           {"key": lock_id(retention.LOCK_KEY)})
        await conn.commit()

    assert skipped.busy and skipped.total == 0
    counted = await _rows(engine, select(func.count()).select_from(turns))
    assert counted == [7]  # nothing deleted
    assert not (await retention.purge(executor, engine, CUTOFF)).busy
