"""SQLite's one writer: a dedicated thread on the stdlib `sqlite3` driver that runs units of
work with group commit.

Every unit queued while the thread was busy goes into the next transaction, each inside
its own SAVEPOINT, so one that fails rolls back alone; the transaction then commits once,
and only after COMMIT are the callers answered — an acknowledgement still follows a
durable write. One hand-off per unit instead of four per statement (aiosqlite), and one
COMMIT for many units under load (`benchmarks/sqlite_drivers.py`).
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import URL
from sqlalchemy.exc import SQLAlchemyError

from core.errors import StorageError

log = logging.getLogger(__name__)

T = TypeVar("T")
Unit = Callable[[Connection], T]

PRAGMAS = ("journal_mode=WAL", "busy_timeout=5000", "foreign_keys=ON", "synchronous=NORMAL")
MAX_BATCH = 128  # units per transaction: bounds how long one COMMIT keeps callers waiting


def sqlite_sync_engine(url: URL) -> Engine:
    """A pysqlite engine with the same connection set-up as the async one."""
    engine = create_engine(url.set(drivername="sqlite+pysqlite"))

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # SQLAlchemy (below) emits BEGIN itself
        cursor = dbapi_connection.cursor()
        for pragma in PRAGMAS:
            cursor.execute(f"PRAGMA {pragma}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # Take the write lock up front so busy_timeout applies when another process holds
        # it (a deferred transaction that reads, then writes, would fail at once instead).
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


@dataclass(slots=True)
class _Job:
    unit: Unit[Any]
    what: str
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Any]
    ok: bool = False
    result: Any = None


_STOP = object()


class SqliteWriter:
    """Runs units of work on one thread, one connection, group-committed."""

    def __init__(self, engine: Engine, *, max_batch: int = MAX_BATCH) -> None:
        self._engine = engine
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._serve, name="sqlite-writer", daemon=True)
        self._started = False
        self._closed = False
        self.units: Counter[str] = Counter()  # units run by kind, for the benchmarks
        self.commits = 0

    async def run(self, unit: Unit[T], what: str) -> T:
        """Run `unit` in a transaction; StorageError("<what> failed") if the database
        refused it. A caller cancelled meanwhile leaves the unit to end as it would."""
        if self._closed:
            raise StorageError(f"{what} failed: the database is closed")
        if not self._started:
            self._started = True
            self._thread.start()
        self.units[what.split(" ", 1)[0]] += 1
        loop = asyncio.get_running_loop()
        job = _Job(unit, what, loop, loop.create_future())
        self._queue.put(job)
        result: T = await job.future
        return result

    async def aclose(self) -> None:
        """Finish what is queued, then stop the thread and close the connection."""
        if self._closed:
            return
        self._closed = True
        if self._started:
            self._queue.put(_STOP)
            await asyncio.to_thread(self._thread.join)
        self._engine.dispose()

    # ----- the writer thread -----

    def _serve(self) -> None:
        with self._engine.connect() as conn:
            while True:
                batch, stop = self._take()
                if batch:
                    self._commit(conn, batch)
                if stop:
                    return

    def _take(self) -> tuple[list[_Job], bool]:
        first = self._queue.get()
        if first is _STOP:
            return [], True
        batch = [first]
        while len(batch) < self._max_batch:
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                break
            if job is _STOP:
                return batch, True
            batch.append(job)
        return batch, False

    def _commit(self, conn: Connection, batch: list[_Job]) -> None:
        try:
            with conn.begin():
                if len(batch) == 1:
                    _run(conn, batch[0])
                    if not batch[0].ok:  # alone, its failure is the transaction's
                        raise _Failed()
                else:
                    for job in batch:
                        with conn.begin_nested() as savepoint:
                            _run(conn, job)
                            if not job.ok:
                                savepoint.rollback()
            self.commits += 1
        except _Failed:
            pass
        except Exception as e:  # BEGIN or COMMIT itself failed: nobody's write stands
            log.error("a SQLite transaction of %d units failed", len(batch), exc_info=True)
            for job in batch:
                job.ok, job.result = False, _storage_error(job.what, e)
        _answer(batch)


class _Failed(Exception):
    pass


def _run(conn: Connection, job: _Job) -> None:
    if job.future.cancelled():  # its caller is gone and nothing was written yet
        job.ok, job.result = False, StorageError(f"{job.what} was cancelled")
        return
    try:
        job.result, job.ok = job.unit(conn), True
    except Exception as e:
        job.ok, job.result = False, _storage_error(job.what, e)


def _storage_error(what: str, error: Exception) -> Exception:
    if isinstance(error, SQLAlchemyError | OSError):
        wrapped = StorageError(f"{what} failed")
        wrapped.__cause__ = error
        return wrapped
    return error  # the unit's own exception (LeaseLost, a bug): raised as it is


def _answer(batch: list[_Job]) -> None:
    """Hand the outcomes back with one wake-up per event loop, not one per caller."""
    by_loop: dict[asyncio.AbstractEventLoop, list[_Job]] = {}
    for job in batch:
        by_loop.setdefault(job.loop, []).append(job)
    for loop, jobs in by_loop.items():
        try:
            loop.call_soon_threadsafe(_settle, jobs)
        except RuntimeError:  # that loop is closed: nobody is waiting any more
            pass


def _settle(jobs: list[_Job]) -> None:
    for job in jobs:
        if job.future.done():
            continue
        if job.ok:
            job.future.set_result(job.result)
        else:
            job.future.set_exception(job.result)
