"""Each test gets a fresh database: a SQLite file under tmp_path, or a PostgreSQL schema
of its own (dropped afterwards) when SWITCHBOARD_TEST_POSTGRES_URL's server answers.

`backend` says which; `test_inbox.py` adds "memory" (the in-memory fakes of
`tests/fakes/stores.py`), for which `storage`, `inbox`, `conversations` and `profiles` are
the fakes and the SQL fixtures (`database`, `engine`, `executor`) do not exist: a test
inherently about SQL is marked `@sql_only`."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.sql import migrate
from adapters.sql.conversations import SqlConversationStore
from adapters.sql.engine import EngineExecutor, Executor, create_engine, sqlite_url
from adapters.sql.inbox import SqlInbox
from adapters.sql.profiles import SqlProfileStore
from adapters.sql.references import SqlConversationReferences
from adapters.sql.tables import metadata
from adapters.sql.tables import profiles as profiles_table
from adapters.sql.writer import sqlite_writer
from core.ports import ConversationReferences, Inbox
from tests.conftest import POSTGRES_URL
from tests.fakes.stores import (
    InMemoryConversationReferences,
    InMemoryConversationStore,
    InMemoryDatabase,
    InMemoryInbox,
    InMemoryProfileStore,
)

SQL_BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
ALL_BACKENDS = [*SQL_BACKENDS, "memory"]

# A test inherently about SQL (transactions, the writer, rows): not run on the fakes.
sql_only = pytest.mark.parametrize("backend", SQL_BACKENDS)


@dataclass
class Database:
    """One empty database; `engine()` opens another engine on it, as another process would."""

    url: str
    connect_args: dict[str, Any] = field(default_factory=dict)
    engines: list[AsyncEngine] = field(default_factory=list)

    executors: list[Executor] = field(default_factory=list)

    @property
    def is_sqlite(self) -> bool:
        return make_url(self.url).get_backend_name() == "sqlite"

    def engine(self) -> AsyncEngine:
        engine = create_engine(self.url, connect_args=self.connect_args)
        self.engines.append(engine)
        return engine

    def executor(self) -> Executor:
        """Another executor of units on this database, as another process would have:
        on SQLite its own writer thread and connection, contending for the file lock."""
        executor: Executor
        if self.is_sqlite:
            executor = sqlite_writer(make_url(self.url))
        else:
            executor = EngineExecutor(self.engine())
        self.executors.append(executor)
        return executor

    async def dispose(self) -> None:
        for executor in self.executors:
            await executor.aclose()
        for engine in self.engines:
            await engine.dispose()


class Clock:
    """The time the stores see; tests move it instead of waiting for leases to expire."""

    def __init__(self) -> None:
        self.current = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)

    def now(self) -> datetime:
        return self.current

    def advance(self, delta: timedelta) -> None:
        self.current += delta


@pytest.fixture(params=SQL_BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    kind: str = request.param
    return kind


@pytest.fixture
async def database(
    backend: str, tmp_path: Path, postgres_unreachable: str | None
) -> AsyncIterator[Database]:
    if backend == "memory":
        raise pytest.UsageError("the in-memory stores have no database: mark the test @sql_only")
    if backend == "sqlite":
        db = Database(sqlite_url(tmp_path))
        yield db
        await db.dispose()
        return
    if postgres_unreachable:
        pytest.skip(postgres_unreachable)
    schema = f"sb_{uuid.uuid4().hex}"
    admin = create_engine(POSTGRES_URL)
    async with admin.begin() as conn:
        await conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    db = Database(POSTGRES_URL, {"server_settings": {"search_path": schema}})
    try:
        yield db
    finally:
        await db.dispose()
        async with admin.begin() as conn:
            await conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
        await admin.dispose()


@pytest.fixture
async def engine(database: Database) -> AsyncEngine:
    engine = database.engine()
    await migrate.upgrade(engine)
    return engine


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def executor(database: Database, engine: AsyncEngine) -> AsyncIterator[Executor]:
    """What runs the inbox's units: SQLite's writer thread (group commit) on the
    migrated file, or the PostgreSQL engine, one transaction per unit."""
    executor: Executor
    if database.is_sqlite:
        executor = sqlite_writer(make_url(database.url))
    else:
        executor = EngineExecutor(engine)
    try:
        yield executor
    finally:
        await executor.aclose()


@dataclass
class Storage:
    """The inbox and the stores that read its tables, on one backend, with a look at
    the tables themselves (SQL row counts, or the fakes' dicts)."""

    backend: str
    clock: Clock
    engine: AsyncEngine | None = None
    executor: Executor | None = None
    database: Database | None = None
    memory: InMemoryDatabase | None = None

    def inbox(self, *, other_process: bool = False, **options: Any) -> Inbox:
        """An inbox (`history`, `max_attempts`, `count` as `options`); `other_process`:
        on an executor of its own, as another process on the same database."""
        if self.memory is not None:
            return InMemoryInbox(self.memory, now=self.clock.now, **options)
        assert self.database is not None and self.executor is not None
        executor = self.database.executor() if other_process else self.executor
        return SqlInbox(executor, now=self.clock.now, **options)

    @property
    def conversations(self) -> SqlConversationStore | InMemoryConversationStore:
        if self.memory is not None:
            return InMemoryConversationStore(self.memory, now=self.clock.now)
        assert self.engine is not None
        return SqlConversationStore(self.engine, now=self.clock.now)

    @property
    def profiles(self) -> SqlProfileStore | InMemoryProfileStore:
        if self.memory is not None:
            return InMemoryProfileStore(self.memory, now=self.clock.now)
        assert self.engine is not None
        return SqlProfileStore(self.engine, now=self.clock.now)

    @property
    def references(self) -> ConversationReferences:
        if self.memory is not None:
            return InMemoryConversationReferences(self.memory)
        assert self.engine is not None and self.executor is not None
        return SqlConversationReferences(self.engine, self.executor, now=self.clock.now)

    async def count(self, table: str) -> int:
        """Rows in `inbox`, `conversations`, `turns` or `profiles`."""
        if self.memory is not None:
            return {
                "inbox": len(self.memory.items),
                "conversations": len(self.memory.conversations),
                "turns": sum(len(thread) for thread in self.memory.turns.values()),
                "profiles": len(self.memory.profiles),
            }[table]
        assert self.engine is not None
        query = select(func.count()).select_from(metadata.tables[table])
        async with self.engine.connect() as conn:
            found: int = (await conn.execute(query)).scalar_one()
        return found

    async def profile_written_at(self, sender_id: str) -> datetime | None:
        """When the profile row was last written (`profiles.updated_at`)."""
        if self.memory is not None:
            return self.memory.profile_written_at.get(sender_id)
        assert self.engine is not None
        query = select(profiles_table.c.updated_at).where(profiles_table.c.id == sender_id)
        async with self.engine.connect() as conn:
            written: datetime | None = (await conn.execute(query)).scalar_one_or_none()
        return written


@pytest.fixture
def storage(request: pytest.FixtureRequest, backend: str, clock: Clock) -> Storage:
    if backend == "memory":
        return Storage(backend, clock, memory=InMemoryDatabase())
    return Storage(
        backend, clock, engine=request.getfixturevalue("engine"),
        executor=request.getfixturevalue("executor"),
        database=request.getfixturevalue("database"),
    )


@pytest.fixture
def inbox(storage: Storage) -> Inbox:
    """`SqlInbox` on the test's executor (or the in-memory inbox), on the test's clock."""
    return storage.inbox()


@pytest.fixture
def conversations(
    request: pytest.FixtureRequest, backend: str, clock: Clock
) -> SqlConversationStore | InMemoryConversationStore:
    if backend == "memory":  # the fakes' tables are the inbox's
        storage: Storage = request.getfixturevalue("storage")
        return storage.conversations
    return SqlConversationStore(request.getfixturevalue("engine"), now=clock.now)


@pytest.fixture
def profiles(
    request: pytest.FixtureRequest, backend: str, clock: Clock
) -> SqlProfileStore | InMemoryProfileStore:
    if backend == "memory":
        storage: Storage = request.getfixturevalue("storage")
        return storage.profiles
    return SqlProfileStore(request.getfixturevalue("engine"), now=clock.now)


@pytest.fixture
async def pg_engines(postgres_unreachable: str | None) -> AsyncIterator[list[AsyncEngine]]:
    """Three engines on the PostgreSQL test database, each standing for a process
    (skipped when PostgreSQL is not reachable)."""
    if postgres_unreachable:
        pytest.skip(postgres_unreachable)
    engines = [create_engine(POSTGRES_URL) for _ in range(3)]
    yield engines
    for engine in engines:
        await engine.dispose()
