"""The SQL adapter against SQLite and, when reachable, PostgreSQL."""
