"""Schema migrations with alembic, run in-process; the scripts ship inside this package."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.sql.engine import transaction

HEAD = "0006"
"""The newest revision; `test_head_names_the_newest_migration` keeps it honest."""

# Any constant: it only has to be the same in every Switchboard process.
_MIGRATION_LOCK = 0x5B0A2D


def alembic_config() -> Config:
    config = Config()
    location = str(Path(__file__).parent / "migrations")
    config.set_main_option("script_location", location.replace("%", "%%"))
    return config


async def upgrade(engine: AsyncEngine) -> None:
    """Bring the schema to HEAD; a no-op when it is there already."""
    async with transaction(engine, "migrating the database") as conn:
        await conn.run_sync(_upgrade)


def _upgrade(conn: Connection) -> None:
    if conn.dialect.name == "postgresql":
        # Two processes starting at once (serve and chat) must not both create tables.
        # SQLite needs no lock: BEGIN IMMEDIATE already serialises the migration.
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK})
    config = alembic_config()
    config.attributes["connection"] = conn
    command.upgrade(config, "head")


async def current_revision(engine: AsyncEngine) -> str | None:
    async with transaction(engine, "reading the schema revision") as conn:
        return await conn.run_sync(
            lambda sync: MigrationContext.configure(sync).get_current_revision()
        )


async def is_current(engine: AsyncEngine) -> bool:
    return await current_revision(engine) == HEAD
