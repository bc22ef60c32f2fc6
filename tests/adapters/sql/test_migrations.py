from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, inspect

from adapters.sql import migrate
from adapters.sql.profiles import SqlProfileStore
from adapters.sql.tables import metadata
from core.profiles import Profile
from tests.adapters.sql.conftest import Database


def test_head_names_the_newest_migration() -> None:
    assert ScriptDirectory.from_config(migrate.alembic_config()).get_current_head() == migrate.HEAD


async def test_an_empty_database_is_migrated_to_head(database: Database) -> None:
    engine = database.engine()
    assert await migrate.current_revision(engine) is None
    assert not await migrate.is_current(engine)

    await migrate.upgrade(engine)

    assert await migrate.current_revision(engine) == migrate.HEAD
    assert await migrate.is_current(engine)
    async with engine.connect() as conn:
        names = await conn.run_sync(lambda sync: inspect(sync).get_table_names())
    assert {"conversations", "turns", "inbox", "profiles"} <= set(names)


async def test_upgrading_a_current_database_changes_nothing(database: Database) -> None:
    engine = database.engine()
    await migrate.upgrade(engine)
    await SqlProfileStore(engine).upsert(Profile(id="slack:T1:U1", name="Ada"))

    await migrate.upgrade(engine)

    assert await migrate.current_revision(engine) == migrate.HEAD
    assert await SqlProfileStore(engine).get("slack:T1:U1") == Profile(id="slack:T1:U1", name="Ada")


async def test_migrations_create_exactly_the_declared_schema(database: Database) -> None:
    engine = database.engine()
    await migrate.upgrade(engine)

    def differences(conn: Connection) -> list[object]:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        return list(compare_metadata(context, metadata))

    async with engine.connect() as conn:
        assert await conn.run_sync(differences) == []
