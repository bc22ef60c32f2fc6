from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import text

from adapters.sql import migrate
from adapters.sql.engine import EngineExecutor, create_engine, sqlite_url
from adapters.sql.inbox import SqlInbox
from core.errors import ConfigurationError, StorageError


def test_the_sqlite_database_is_one_file_in_the_data_directory(tmp_path: Path) -> None:
    assert sqlite_url(tmp_path) == f"sqlite+aiosqlite:///{tmp_path}/switchboard.db"


@pytest.mark.parametrize("url", ["mysql+aiomysql://db/x", "postgresql+psycopg2://db/x", "nonsense"])
def test_unsupported_database_urls_are_configuration_errors(url: str) -> None:
    with pytest.raises(ConfigurationError) as raised:
        create_engine(url)
    assert "DATABASE_URL" in raised.value.problems[0]


@pytest.mark.parametrize("url", ["postgres://db/x", "postgresql://db/x"])
def test_plain_postgresql_urls_use_asyncpg(url: str) -> None:
    assert create_engine(url).url.drivername == "postgresql+asyncpg"


async def test_sqlite_connections_are_configured_for_two_processes(tmp_path: Path) -> None:
    engine = create_engine(sqlite_url(tmp_path))
    try:
        async with engine.connect() as conn:
            settings = {
                pragma: (await conn.exec_driver_sql(f"PRAGMA {pragma}")).scalar()
                for pragma in ("journal_mode", "busy_timeout", "foreign_keys", "synchronous")
            }
    finally:
        await engine.dispose()
    assert settings == {"journal_mode": "wal", "busy_timeout": 5000, "foreign_keys": 1,
                        "synchronous": 1}


async def test_sqlite_transactions_take_the_write_lock_before_their_first_read(
    tmp_path: Path,
) -> None:
    engine = create_engine(sqlite_url(tmp_path))
    other_process = sqlite3.connect(tmp_path / "switchboard.db", timeout=0, isolation_level=None)
    try:
        async with engine.begin() as conn:
            await conn.execute(text("SELECT 1"))
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                other_process.execute("BEGIN IMMEDIATE")
        other_process.execute("BEGIN IMMEDIATE")  # free again once the transaction ends
        other_process.execute("ROLLBACK")
    finally:
        other_process.close()
        await engine.dispose()


async def test_an_in_memory_sqlite_database_can_be_migrated() -> None:
    engine = create_engine("sqlite+aiosqlite://")
    try:
        await migrate.upgrade(engine)
        assert await migrate.is_current(engine)
    finally:
        await engine.dispose()


async def test_an_unreachable_database_is_a_storage_error() -> None:
    engine = create_engine("postgresql+asyncpg://postgres@127.0.0.1:1/none")
    try:
        with pytest.raises(StorageError, match="reading item 1 failed"):
            await SqlInbox(EngineExecutor(engine)).get(1)
    finally:
        await engine.dispose()
