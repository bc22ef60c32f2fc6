"""Production shape: PostgreSQL migrated by `switchboard db upgrade`, two server processes
sharing it (skipped when PostgreSQL is not reachable)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from adapters.sql import migrate
from bots.database import upgrade
from core.errors import ConfigurationError
from tests.e2e.conftest import MakeSettings, fresh_postgres_database, serving
from tests.fakes.openai_server import FakeOpenAI, Reply

pytestmark = pytest.mark.postgres


@pytest.fixture
async def database_url(postgres_unreachable: str | None) -> AsyncIterator[str]:
    if postgres_unreachable:
        pytest.skip(postgres_unreachable)
    async with fresh_postgres_database("sb_e2e") as url:
        yield url


async def test_two_processes_share_one_postgresql_database(
    database_url: str, make_settings: MakeSettings, llm: FakeOpenAI
) -> None:
    # Each process needs its own knowledge index: the embedded shard is single-process.
    settings = make_settings(database_url=database_url)
    with pytest.raises(ConfigurationError, match="switchboard db upgrade"):
        async with serving(settings):
            pass

    assert (await upgrade(settings)).endswith(f"is at revision {migrate.HEAD}")
    other = make_settings(database_url=database_url, data_dir=settings.data_dir.with_name("other"))
    llm.script(Reply("Stored in PostgreSQL."), Reply("Continued elsewhere."))
    async with serving(settings) as first, serving(other) as second:
        body = await (await first.post("/api/v1/chat", json={"message": "hi"})).json()
        cid = body["conversation_id"]
        follow_up = await second.post(
            "/api/v1/chat", json={"message": "still there?", "conversation_id": cid}
        )
        assert (await follow_up.json())["reply"] == "Continued elsewhere."
        history = await (await first.get(f"/api/v1/conversations/{cid}")).json()
    assert [t["content"] for t in history["turns"]] == [
        "hi", "Stored in PostgreSQL.", "still there?", "Continued elsewhere."
    ]
