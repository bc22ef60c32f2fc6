"""What one SQLite transaction costs through each way of reaching SQLite from asyncio.

    .venv/bin/python benchmarks/sqlite_drivers.py

- SQLAlchemy's aiosqlite dialect (what Switchboard uses, as issue 2 asks): every cursor,
  execute, fetch, close, BEGIN and COMMIT is a hand-off to aiosqlite's thread.
- The same SQLAlchemy Core statements on the sync pysqlite driver, a whole transaction
  run on one dedicated thread: one hand-off per transaction.
- A bare thread hand-off, and plain sqlite3 on the calling thread, for scale.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import sqlite3
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event, text
from sqlalchemy.ext.asyncio import create_async_engine

N = 1000
STATEMENTS = ("UPDATE t SET x = 1 WHERE x = 2", "INSERT INTO t VALUES (1)", "SELECT count(*) FROM t")


def _pragmas(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None
    for pragma in ("journal_mode=WAL", "busy_timeout=5000", "synchronous=NORMAL"):
        dbapi_connection.execute(f"PRAGMA {pragma}")


def _immediate(conn: Any) -> None:
    conn.exec_driver_sql("BEGIN IMMEDIATE")


async def timed(label: str, step: Callable[[], Awaitable[object]]) -> None:
    start = time.perf_counter()
    for _ in range(N):
        await step()
    print(f"{label:58} {(time.perf_counter() - start) / N * 1000:6.3f} ms")


async def main() -> None:
    folder = Path(tempfile.mkdtemp())
    loop = asyncio.get_running_loop()
    thread = concurrent.futures.ThreadPoolExecutor(1)

    aio = create_async_engine(f"sqlite+aiosqlite:///{folder / 'a.db'}", pool_size=1, max_overflow=0)
    event.listen(aio.sync_engine, "connect", _pragmas)
    event.listen(aio.sync_engine, "begin", _immediate)
    sync = create_engine(f"sqlite:///{folder / 'b.db'}", pool_size=1, max_overflow=0)
    event.listen(sync, "connect", _pragmas)
    event.listen(sync, "begin", _immediate)
    async with aio.begin() as conn:
        await conn.execute(text("CREATE TABLE t (x INT)"))
    with sync.begin() as conn:
        conn.execute(text("CREATE TABLE t (x INT)"))

    async def aiosqlite_tx() -> None:
        async with aio.begin() as conn:
            for sql in STATEMENTS:
                await conn.execute(text(sql))

    def sync_tx() -> None:
        with sync.begin() as conn:
            for sql in STATEMENTS:
                conn.execute(text(sql))

    raw = sqlite3.connect(folder / "c.db", isolation_level=None)

    async def raw_tx() -> None:
        raw.execute("BEGIN IMMEDIATE")
        raw.execute("SELECT 1").fetchall()
        raw.execute("COMMIT")

    await timed("3-statement transaction, SQLAlchemy + aiosqlite", aiosqlite_tx)
    await timed("3-statement transaction, SQLAlchemy + pysqlite on one thread",
                lambda: loop.run_in_executor(thread, sync_tx))
    await timed("bare thread hand-off (run_in_executor)", lambda: loop.run_in_executor(thread, int))
    await timed("plain sqlite3 transaction on the event loop thread", raw_tx)
    await aio.dispose()
    sync.dispose()


if __name__ == "__main__":
    asyncio.run(main())
