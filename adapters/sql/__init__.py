"""SQL storage: the conversation store, the durable inbox and profiles, on SQLite (the
embedded default, one file in the data directory) or PostgreSQL, with the same code.

`engine.create_engine` builds the engine, `migrate.upgrade` brings the schema to head, and
`SqlConversationStore`, `SqlInbox`, `SqlProfileStore` implement the core ports on it."""
