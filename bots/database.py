"""`switchboard db upgrade`: apply migrations (the Procfile's release phase); and the
database as the commands that keep things in it (`apikey`, `groups`) open it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.sql import migrate
from adapters.sql.engine import create_engine
from bots.settings import Settings


async def upgrade(settings: Settings) -> str:
    if settings.database_is_embedded:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = create_engine(settings.sqlalchemy_url)
    try:
        await migrate.upgrade(engine)
        revision = await migrate.current_revision(engine)
    finally:
        await engine.dispose()
    return f"{settings.describe_database()} is at revision {revision}"


@asynccontextmanager
async def open_database(settings: Settings) -> AsyncIterator[AsyncEngine]:
    """The configured database, migrated if it is the embedded one (as `serve` would),
    else refused until `switchboard db upgrade` has run."""
    from bots.bootstrap import prepare_schema

    engine = create_engine(settings.sqlalchemy_url)
    try:
        if settings.database_is_embedded:
            settings.data_dir.mkdir(parents=True, exist_ok=True)
        await prepare_schema(engine, settings)
        yield engine
    finally:
        await engine.dispose()
