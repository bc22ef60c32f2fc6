"""Stored API keys: found by their digest, refused once revoked or expired, by every
process at once (each test's second engine stands for another process)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from adapters.sql.api_keys import SqlApiKeys
from adapters.sql.tables import api_keys
from core.apikeys import KEY_PREFIX, new_key
from tests.adapters.sql.conftest import Clock, Database


async def test_a_key_is_stored_as_a_digest_and_finds_its_user(
    database: Database, engine: object, clock: Clock
) -> None:
    keys = SqlApiKeys(database.engine(), now=clock.now)
    made = new_key()
    stored = await keys.create(made, user="alice", expires_at=None)

    assert made.secret.startswith(KEY_PREFIX) and made.secret.startswith(stored.prefix)
    assert await keys.user_of(made.secret) == "alice"
    assert await keys.user_of(made.secret + "x") is None
    async with database.engine().connect() as conn:
        row = (await conn.execute(select(api_keys))).mappings().one()
    assert made.secret not in {str(v) for v in row.values()}
    assert row["key_hash"] == made.digest and len(row["key_hash"]) == 64


async def test_a_revoked_key_is_refused_at_once_by_another_process(
    database: Database, engine: object, clock: Clock
) -> None:
    here, there = (SqlApiKeys(database.engine(), now=clock.now) for _ in range(2))
    made = new_key()
    stored = await here.create(made, user="bob", expires_at=None)
    assert await there.user_of(made.secret) == "bob"

    revoked = await here.revoke(stored.id)

    assert revoked is not None and revoked.revoked_at == clock.now()
    assert await there.user_of(made.secret) is None
    assert [k.state(clock.now()) for k in await there.list()] == ["revoked"]
    assert await here.revoke("no-such-key") is None


async def test_an_expired_key_is_refused_and_listed_as_expired(
    database: Database, engine: object, clock: Clock
) -> None:
    keys = SqlApiKeys(database.engine(), now=clock.now)
    made = new_key()
    await keys.create(made, user="carol", expires_at=clock.now() + timedelta(hours=1))
    assert await keys.user_of(made.secret) == "carol"

    clock.advance(timedelta(hours=1))

    assert await keys.user_of(made.secret) is None
    [listed] = await keys.list()
    assert (listed.user, listed.state(clock.now())) == ("carol", "expired")
