"""Each test gets a fresh database: a SQLite file under tmp_path, or a PostgreSQL schema
of its own (dropped afterwards) when SWITCHBOARD_TEST_POSTGRES_URL's server answers."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.sql import migrate
from adapters.sql.conversations import SqlConversationStore
from adapters.sql.engine import create_engine, sqlite_url
from adapters.sql.inbox import SqlInbox
from adapters.sql.profiles import SqlProfileStore
from tests.conftest import POSTGRES_URL


@dataclass
class Database:
    """One empty database; `engine()` opens another engine on it, as another process would."""

    url: str
    connect_args: dict[str, Any] = field(default_factory=dict)
    engines: list[AsyncEngine] = field(default_factory=list)

    def engine(self) -> AsyncEngine:
        engine = create_engine(self.url, connect_args=self.connect_args)
        self.engines.append(engine)
        return engine

    async def dispose(self) -> None:
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


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def database(
    request: pytest.FixtureRequest, tmp_path: Path, postgres_unreachable: str | None
) -> AsyncIterator[Database]:
    if request.param == "sqlite":
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
def conversations(engine: AsyncEngine, clock: Clock) -> SqlConversationStore:
    return SqlConversationStore(engine, now=clock.now)


@pytest.fixture
def inbox(engine: AsyncEngine, clock: Clock) -> SqlInbox:
    return SqlInbox(engine, now=clock.now)


@pytest.fixture
def profiles(engine: AsyncEngine, clock: Clock) -> SqlProfileStore:
    return SqlProfileStore(engine, now=clock.now)
