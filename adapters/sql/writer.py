"""SQLite's one writer: a dedicated thread on the stdlib `sqlite3` driver that runs units of
work with group commit.

Every unit queued while the thread was busy goes into the next transaction, each inside
its own SAVEPOINT, so one that fails rolls back alone; the transaction then commits once,
and only after COMMIT are the callers answered — an acknowledgement still follows a
durable write. One hand-off per unit instead of four per statement (aiosqlite), and one
COMMIT for many units under load (`benchmarks/sqlite_drivers.py`).

Processes that share the file (`serve --role web` next to `worker`) take turns through a
lock file beside the database (`_ProcessLock`): SQLite's own busy handler sleeps up to
100 ms between tries and lets a busy process starve the other.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import queue
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FuturesTimeout
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import URL
from sqlalchemy.exc import SQLAlchemyError

from core.errors import StorageError

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

T = TypeVar("T")
Unit = Callable[[Connection], T]

PRAGMAS = ("journal_mode=WAL", "busy_timeout=5000", "foreign_keys=ON", "synchronous=NORMAL")
LOCK_WAIT = 5  # seconds, as busy_timeout
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


def sqlite_writer(url: URL) -> SqliteWriter:
    """The writer for the database at `url`; a file's writers in every process take
    turns through `<file>-writer.lock`."""
    in_memory = url.database in (None, "", ":memory:") or url.query.get("mode") == "memory"
    lock_file = None if in_memory else Path(f"{url.database}-writer.lock")
    return SqliteWriter(sqlite_sync_engine(url), lock_file=lock_file)


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

    def __init__(
        self, engine: Engine, *, max_batch: int = MAX_BATCH, lock_file: Path | None = None
    ) -> None:
        self._engine = engine
        self._max_batch = max_batch
        self._lock_file = lock_file
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
        lock = _ProcessLock(self._lock_file)
        try:
            with self._engine.connect() as conn:
                while True:
                    batch, stop = self._take()
                    if batch:
                        with lock.held():
                            self._commit(conn, batch)
                    if stop:
                        return
        finally:
            lock.close()

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


class _ProcessLock:
    """`<file>-writer.lock`, held by this process's writer around each transaction.

    A contended lock is waited for with a blocking flock, so the kernel wakes the waiter
    the moment the other process lets go (polling lost every race to a busy peer that
    takes it again at once: ack p99 0.7 s instead of 0.12 s in `slack_load.py --layout
    split`). The blocking call runs on a helper thread so the wait can end after
    LOCK_WAIT: a process stopped while holding the lock (SIGSTOP, a debugger) must not
    hang every other one. Past that, the transaction goes ahead without it and SQLite's
    busy_timeout decides, as it would without the lock file."""

    def __init__(self, path: Path | None) -> None:
        self._fd: int | None = None
        self._waiter: ThreadPoolExecutor | None = None
        if path is None or fcntl is None:  # in memory: nothing to share; Windows: no flock
            return
        try:
            self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError:
            log.warning("no writer lock file at %s; processes sharing the database will "
                        "take turns more slowly", path, exc_info=True)

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        fd = self._fd
        if fd is None or not self._acquire(fd):
            yield
            return
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)

    def _acquire(self, fd: int) -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            pass
        if self._waiter is None:
            self._waiter = ThreadPoolExecutor(1, thread_name_prefix="sqlite-writer-lock")
        waited = self._waiter.submit(fcntl.flock, fd, fcntl.LOCK_EX)
        try:
            waited.result(timeout=LOCK_WAIT)
            return True
        except FuturesTimeout:
            log.warning("another process has held the SQLite writer lock for %d s; "
                        "writing without it", LOCK_WAIT)
            # Let go of it as soon as the abandoned wait gets it.
            waited.add_done_callback(lambda _: fcntl.flock(fd, fcntl.LOCK_UN))
            return False

    def close(self) -> None:
        if self._waiter is not None:
            self._waiter.shutdown(wait=False, cancel_futures=True)
        if self._fd is not None:
            os.close(self._fd)


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
