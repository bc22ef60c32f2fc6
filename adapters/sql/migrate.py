"""Schema migrations with alembic, run in-process; the scripts ship inside this package.

alembic (~11 MB resident) is imported only to migrate: a process that finds the schema
at HEAD reads the revision with one query and leaves it unloaded.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.sql.engine import transaction

HEAD = "0011"
"""The newest revision; `test_head_names_the_newest_migration` keeps it honest."""

# Any constant: it only has to be the same in every Switchboard process.
_MIGRATION_LOCK = 0x5B0A2D


if TYPE_CHECKING:
    from alembic.config import Config


def alembic_config() -> Config:
    from alembic.config import Config

    config = Config()
    location = str(Path(__file__).parent / "migrations")
    config.set_main_option("script_location", location.replace("%", "%%"))
    return config


async def upgrade(engine: AsyncEngine) -> None:
    """Bring the schema to HEAD; a no-op when it is there already."""
    if await is_current(engine):
        return
    async with transaction(engine, "migrating the database") as conn:
        await conn.run_sync(_upgrade)


def _upgrade(conn: Connection) -> None:
    from alembic import command

    if conn.dialect.name == "postgresql":
        # Two processes starting at once (serve and chat) must not both create tables.
        # SQLite needs no lock: BEGIN IMMEDIATE already serialises the migration.
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK})
    config = alembic_config()
    config.attributes["connection"] = conn
    command.upgrade(config, "head")


async def current_revision(engine: AsyncEngine) -> str | None:
    async with transaction(engine, "reading the schema revision") as conn:
        return await conn.run_sync(_revision)


def _revision(conn: Connection) -> str | None:
    """alembic's bookkeeping table, read directly (None before the first migration)."""
    if not conn.dialect.has_table(conn, "alembic_version"):
        return None
    try:
        found = conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    except DBAPIError:
        return None
    return found[0] if len(found) == 1 else None


async def is_current(engine: AsyncEngine) -> bool:
    return await current_revision(engine) == HEAD
