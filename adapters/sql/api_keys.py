"""`ApiKeyStore` on SQL: each request's key is found by its digest with one indexed
SELECT, with no cache, so a revoked or expired key is refused at once by every process."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.sql.engine import single_statement, transaction
from adapters.sql.tables import api_keys
from adapters.sql.types import utcnow
from core.apikeys import ApiKey, NewKey, digest


class SqlApiKeys:
    def __init__(self, engine: AsyncEngine, *, now: Callable[[], datetime] = utcnow) -> None:
        self._engine = engine
        self._now = now

    async def create(self, key: NewKey, *, user: str, expires_at: datetime | None) -> ApiKey:
        made = ApiKey(id=key.id, user=user, prefix=key.prefix, created_at=self._now(),
                      expires_at=expires_at)
        row = {"id": made.id, "user_name": user, "prefix": made.prefix, "key_hash": key.digest,
               "created_at": made.created_at, "expires_at": expires_at}
        async with transaction(self._engine, "storing an API key") as conn:
            await conn.execute(api_keys.insert().values(**row))
        return made

    async def list(self) -> list[ApiKey]:
        query = select(api_keys).order_by(api_keys.c.created_at, api_keys.c.id)
        async with single_statement(self._engine, "listing API keys") as conn:
            return [_key(row) for row in (await conn.execute(query)).mappings()]

    async def revoke(self, key_id: str) -> ApiKey | None:
        """Revoking twice keeps the first time."""
        async with transaction(self._engine, "revoking an API key") as conn:
            await conn.execute(
                update(api_keys)
                .where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
                .values(revoked_at=self._now())
            )
            row = (await conn.execute(select(api_keys).where(api_keys.c.id == key_id))).mappings()
            found = row.one_or_none()
        return _key(found) if found is not None else None

    async def user_of(self, secret: str) -> str | None:
        now = self._now()
        query = select(api_keys.c.user_name).where(
            api_keys.c.key_hash == digest(secret),
            api_keys.c.revoked_at.is_(None),
            or_(api_keys.c.expires_at.is_(None), api_keys.c.expires_at > now),
        )
        async with single_statement(self._engine, "checking an API key") as conn:
            user: str | None = (await conn.execute(query)).scalar_one_or_none()
        return user


def _key(row: Any) -> ApiKey:
    return ApiKey(
        id=row["id"], user=row["user_name"], prefix=row["prefix"],
        created_at=row["created_at"], expires_at=row["expires_at"],
        revoked_at=row["revoked_at"],
    )
