"""Alembic environment. `adapters.sql.migrate` runs it programmatically and hands over
an open connection in `config.attributes["connection"]`; there is no alembic.ini."""

from __future__ import annotations

from alembic import context

from adapters.sql.tables import metadata

config = context.config


def run() -> None:
    if context.is_offline_mode():
        # `alembic upgrade head --sql` for a DBA: needs sqlalchemy.url set on the config.
        context.configure(
            url=config.get_main_option("sqlalchemy.url"),
            target_metadata=metadata,
            literal_binds=True,
        )
        with context.begin_transaction():
            context.run_migrations()
        return
    connection = config.attributes["connection"]
    context.configure(
        connection=connection,
        target_metadata=metadata,
        # SQLite cannot ALTER most things: later migrations rebuild tables in batch mode.
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


run()
