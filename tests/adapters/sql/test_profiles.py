from __future__ import annotations

import asyncio

from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.sql.profiles import SqlProfileStore
from core.profiles import Profile
from tests.adapters.sql.conftest import Database

ADA = "slack:T1:U1"


async def test_a_new_profile_is_stored_as_given(profiles: SqlProfileStore) -> None:
    ada = Profile(id=ADA, name="Ada", email="ada@example.com", title="Engineer",
                  department="R&D", time_zone="Europe/London", preferences={"tone": "brief"})

    assert await profiles.upsert(ada) == ada
    assert await profiles.get(ADA) == ada


async def test_an_update_that_knows_less_keeps_what_is_known(profiles: SqlProfileStore) -> None:
    await profiles.upsert(Profile(id=ADA, name="Ada", title="Engineer", preferences={"a": 1}))

    merged = await profiles.upsert(
        Profile(id=ADA, name="Ada L.", time_zone="UTC", preferences={"b": 2})
    )

    assert merged == Profile(id=ADA, name="Ada L.", title="Engineer", time_zone="UTC",
                             preferences={"a": 1, "b": 2})
    assert await profiles.get(ADA) == merged


async def test_concurrent_updates_lose_no_field(
    database: Database, engine: AsyncEngine
) -> None:
    stores = [SqlProfileStore(e) for e in (engine, database.engine())]
    barrier = asyncio.Barrier(10)

    async def learn(n: int) -> None:
        await barrier.wait()
        await stores[n % 2].upsert(Profile(id=ADA, preferences={f"key{n}": n}))

    await asyncio.gather(*(learn(n) for n in range(10)))

    stored = await stores[0].get(ADA)
    assert stored is not None and stored.preferences == {f"key{n}": n for n in range(10)}


async def test_unknown_senders_have_no_profile(profiles: SqlProfileStore) -> None:
    assert await profiles.get("slack:T1:nobody") is None
