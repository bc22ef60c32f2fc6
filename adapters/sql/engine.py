"""Engines for SQLite (the embedded default) and PostgreSQL, and the boundary every store
operation crosses: one transaction, run to its end, driver errors raised as `StorageError`."""

from __future__ import annotations

import asyncio
import functools
from collections import Counter
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar

from sqlalchemy import Connection, Table, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from core.errors import ConfigurationError, StorageError

log = logging.getLogger(__name__)

_SINGLE_STATEMENT = "switchboard_single_statement"

# URL schemes accepted in DATABASE_URL, and the async driver each one runs on.
DRIVERS = {
    "sqlite": "sqlite+aiosqlite",
    "sqlite+aiosqlite": "sqlite+aiosqlite",
    "postgres": "postgresql+asyncpg",
    "postgresql": "postgresql+asyncpg",
    "postgresql+asyncpg": "postgresql+asyncpg",
}


def sqlite_url(data_dir: Path) -> str:
    return f"sqlite+aiosqlite:///{data_dir.absolute() / 'switchboard.db'}"


def create_engine(url: str, *, connect_args: Mapping[str, Any] | None = None) -> AsyncEngine:
    """An engine for `url`; `connect_args` go to the driver (tests pass asyncpg's
    `server_settings`). No connection is opened until first use."""
    parsed = _parse(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(parsed, dict(connect_args or {}))
    # Every network call has a timeout: connecting, and each statement.
    args = {"timeout": 10, "command_timeout": 30, **(connect_args or {})}
    return create_async_engine(parsed, pool_pre_ping=True, pool_timeout=30, connect_args=args)


def _parse(url: str) -> URL:
    try:
        parsed = make_url(url)
    except ArgumentError as e:
        raise ConfigurationError([f"DATABASE_URL is not a database URL: {e}"]) from e
    driver = DRIVERS.get(parsed.drivername)
    if driver is None:
        raise ConfigurationError(
            [
                f"DATABASE_URL scheme {parsed.drivername!r} is not supported: use "
                "sqlite+aiosqlite:///path/to/file.db or postgresql+asyncpg://user@host/db"
            ]
        )
    return parsed.set(drivername=driver)


def _sqlite_engine(url: URL, connect_args: dict[str, Any]) -> AsyncEngine:
    # One connection per process: SQLite has a single writer anyway, and queueing in the
    # pool is cheaper and fairer than connections of one process fighting over the file
    # lock. busy_timeout still covers the other process (`serve` next to `chat`).
    in_memory = url.database in (None, "", ":memory:")  # the dialect picks a StaticPool
    pool = {} if in_memory else {"pool_size": 1, "max_overflow": 0, "pool_timeout": 60}
    # Every checkout ends its own transaction (COMMIT or ROLLBACK) before it is returned,
    # so the pool's reset ROLLBACK would only cost one more thread round trip per call.
    engine = create_async_engine(
        url, connect_args=connect_args, pool_reset_on_return=None, **pool
    )

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy emit BEGIN itself (below) instead of the driver's deferred one.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        for pragma in ("journal_mode=WAL", "busy_timeout=5000", "foreign_keys=ON",
                       "synchronous=NORMAL"):
            cursor.execute(f"PRAGMA {pragma}")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        if conn.get_execution_options().get(_SINGLE_STATEMENT):
            return  # autocommit: the lone statement is its own (atomic) transaction
        # A deferred transaction that reads and then writes cannot wait for the lock:
        # SQLite answers SQLITE_BUSY at once. Taking the write lock up front makes
        # busy_timeout apply, at the price of serialising readers (cheap here).
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


@asynccontextmanager
async def transaction(engine: AsyncEngine, what: str) -> AsyncIterator[AsyncConnection]:
    """One transaction; database failures leave as `StorageError("<what> failed")`."""
    try:
        async with engine.begin() as conn:
            yield conn
    except (SQLAlchemyError, OSError) as e:
        raise StorageError(f"{what} failed") from e


@asynccontextmanager
async def single_statement(engine: AsyncEngine, what: str) -> AsyncIterator[AsyncConnection]:
    """For exactly one statement, which is atomic by itself. On SQLite it runs without
    BEGIN IMMEDIATE and COMMIT: through aiosqlite each of those is a thread round trip
    (~0.2 ms here), and the hot path of a message is mostly such lone statements."""
    try:
        async with engine.connect() as conn:
            conn = await conn.execution_options(**{_SINGLE_STATEMENT: True})
            async with conn.begin():
                yield conn
    except (SQLAlchemyError, OSError) as e:
        raise StorageError(f"{what} failed") from e


def insert(engine: AsyncEngine, table: Table) -> postgresql.Insert | sqlite.Insert:
    """The dialect's INSERT, which has `on_conflict_do_nothing` on both databases."""
    if engine.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


class _Store(Protocol):
    _inflight: set[asyncio.Task[Any]]


S = TypeVar("S", bound=_Store)
P = ParamSpec("P")
T = TypeVar("T")


def uninterrupted(
    method: Callable[Concatenate[S, P], Awaitable[T]],
) -> Callable[Concatenate[S, P], Awaitable[T]]:
    """Run a store method in its own task (kept in `self._inflight`), so that a caller's
    cancellation (shutdown, timeout) returns at once while the transaction still ends in
    COMMIT or ROLLBACK. Cut off mid-transaction, SQLAlchemy hard-closes the connection,
    and a SQLite connection closed with a live statement keeps its write lock until it is
    garbage collected: every later transaction, in every process, would wait out
    busy_timeout and fail."""

    @functools.wraps(method)
    async def run(self: S, *args: P.args, **kwargs: P.kwargs) -> T:
        task = asyncio.create_task(method(self, *args, **kwargs))
        self._inflight.add(task)
        task.add_done_callback(self._inflight.discard)
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            task.add_done_callback(_log_orphaned_failure)
            raise

    return run


async def drain(*stores: _Store, timeout: float = 10.0) -> None:
    """Wait for store operations still running after their callers were cancelled, so
    the engine is disposed only once every transaction has ended."""
    pending = {task for store in stores for task in store._inflight}
    if pending:
        await asyncio.wait(pending, timeout=timeout)


def _log_orphaned_failure(task: asyncio.Task[Any]) -> None:
    # Its caller was cancelled and nobody else will look at the outcome.
    if not task.cancelled() and (error := task.exception()) is not None:
        log.warning("a database operation failed after its caller was cancelled",
                    exc_info=error)


class Executor(Protocol):
    """Runs units of work (`adapters/sql/units.py`), each in exactly one transaction."""

    units: Counter[str]  # units run by kind ("recording", "claiming"…), for the benchmarks
    commits: int  # transactions committed for them

    async def run(self, unit: Callable[[Connection], T], what: str) -> T: ...

    async def aclose(self) -> None: ...


class EngineExecutor:
    """PostgreSQL: each unit in its own transaction through `AsyncConnection.run_sync`.
    A caller's cancellation returns at once while the transaction still ends in COMMIT or
    ROLLBACK (see `uninterrupted`)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._inflight: set[asyncio.Task[Any]] = set()
        self.units: Counter[str] = Counter()
        self.commits = 0

    async def run(self, unit: Callable[[Connection], T], what: str) -> T:
        self.units[what.split(" ", 1)[0]] += 1
        return await self._run(unit, what)

    @uninterrupted
    async def _run(self, unit: Callable[[Connection], T], what: str) -> T:
        async with transaction(self._engine, what) as conn:
            result = await conn.run_sync(unit)
        self.commits += 1
        return result

    async def aclose(self) -> None:
        await drain(self)


def create_executor(url: str, engine: AsyncEngine) -> Executor:
    """SQLite: one writer thread on the sync driver with group commit; PostgreSQL: the
    async engine (asyncpg)."""
    parsed = _parse(url)
    if parsed.get_backend_name() == "sqlite":
        from adapters.sql.writer import sqlite_writer

        return sqlite_writer(parsed)
    return EngineExecutor(engine)
