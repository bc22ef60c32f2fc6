"""`PgExclusive`: one holder per key across processes, on PostgreSQL's session advisory
locks (skipped when PostgreSQL is not reachable). Each instance stands for a process."""

from __future__ import annotations

import uuid

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.sql.locks import PgExclusive, lock_id


def key() -> str:
    return f"teams-stream:{uuid.uuid4().hex}"  # advisory locks are database-wide


async def test_one_holder_at_a_time_and_the_next_after_a_release(
    pg_engines: list[AsyncEngine],
) -> None:
    a, b = PgExclusive(pg_engines[0]), PgExclusive(pg_engines[1])
    chat, other = key(), key()
    try:
        assert await a.take(chat)
        assert not await b.take(chat)
        assert not await a.take(chat)  # held already, by this process too
        assert await b.take(other)  # another key is another lock

        await a.release(chat)
        assert await b.take(chat)
    finally:
        await a.aclose()
        await b.aclose()


async def test_what_a_dead_process_held_is_free_and_its_next_take_works(
    pg_engines: list[AsyncEngine],
) -> None:
    a, b = PgExclusive(pg_engines[0]), PgExclusive(pg_engines[1])
    chat = key()
    try:
        assert await a.take(chat)
        assert not await b.take(chat)
        # a's session ends as a killed process's does (its connection terminated);
        # the two-argument form waits until that backend has exited and let go.
        holder = lock_id(chat)  # a bigint lock shows as classid (high), objid (low)
        async with pg_engines[2].connect() as admin:
            await admin.execute(text(
                "SELECT pg_terminate_backend(pid, 10000) FROM pg_locks WHERE locktype = 'advisory' "
                "AND granted AND classid = :high AND objid = :low AND objsubid = 1"
            ), {"high": (holder >> 32) & 0xFFFFFFFF, "low": holder & 0xFFFFFFFF})
        assert await b.take(chat)
        assert not await a.take(chat)  # a new session of a's, asking in turn
    finally:
        await a.aclose()
        await b.aclose()

