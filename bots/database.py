"""`switchboard db upgrade`: apply migrations (the Procfile's release phase)."""

from __future__ import annotations

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
