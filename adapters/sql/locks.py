"""`PgExclusive`: one holder per key across the processes sharing a PostgreSQL database,
with session advisory locks on a connection of its own. A process that dies closes its
session, and PostgreSQL lets go of what it held: nothing to expire or clean up.

If the database cannot be asked (it is away), `take` says yes: what the lock guards is a
courtesy to a platform (Teams' one stream per chat), which refuses a second holder itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from adapters.sql.notify import CONNECTION_GONE

log = logging.getLogger(__name__)


class PgExclusive:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._conn: AsyncConnection | None = None
        self._driver: Any = None
        self._lock = asyncio.Lock()  # one query at a time on the one connection
        self._held: set[str] = set()

    async def take(self, key: str) -> bool:
        if key in self._held:
            return False
        try:
            taken = bool(await self._ask("SELECT pg_try_advisory_lock($1)", key))
        except CONNECTION_GONE as e:
            log.warning("could not ask PostgreSQL who holds %s (%s); going ahead", key,
                        type(e).__name__)
            return True
        if taken:
            self._held.add(key)
        return taken

    async def release(self, key: str) -> None:
        if key not in self._held:
            return
        self._held.discard(key)
        try:
            await self._ask("SELECT pg_advisory_unlock($1)", key)
        except CONNECTION_GONE as e:  # its session is gone, and the lock with it
            log.info("could not release %s (%s)", key, type(e).__name__)

    async def aclose(self) -> None:
        await self._drop()

    async def _ask(self, query: str, key: str) -> Any:
        """On a connection found dead (the database restarted), once more on a new one."""
        async with self._lock:
            for attempt in (1, 2):
                try:
                    if self._driver is None:
                        self._conn = await self._engine.connect()
                        raw = await self._conn.get_raw_connection()
                        self._driver = raw.driver_connection
                    return await self._driver.fetchval(query, lock_id(key))
                except CONNECTION_GONE:
                    # Whatever the dead session held went with it.
                    self._held.clear()
                    await self._drop()
                    if attempt == 2:
                        raise

    async def _drop(self) -> None:
        conn, self._conn, self._driver = self._conn, None, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.invalidate()
            with contextlib.suppress(Exception):
                await conn.close()


def lock_id(key: str) -> int:
    """A key as PostgreSQL's 64-bit advisory lock id."""
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big",
                          signed=True)
