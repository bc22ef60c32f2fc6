"""Rate limits on the REST API: a message over the limit is refused with 429, Retry-After
and the JSON error shape, before anything is stored or asked of the model."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient
from sqlalchemy import func, select

from adapters.sql.tables import inbox
from tests.e2e.conftest import MakeSettings, services, serving
from tests.fakes.openai_server import FakeOpenAI, Reply

KEYS = "alice:alice-key-0123456789,bob:bob-key-0123456789ab"
ALICE = {"Authorization": "Bearer alice-key-0123456789"}
BOB = {"Authorization": "Bearer bob-key-0123456789ab"}


async def _recorded(client: TestClient[Any, Any]) -> int:
    async with services(client).stores.engine.connect() as conn:
        count: int = (await conn.execute(select(func.count()).select_from(inbox))).scalar_one()
    return count


async def test_a_person_over_the_limit_gets_429_with_retry_after(
    make_settings: MakeSettings, llm: FakeOpenAI
) -> None:
    llm.script(Reply("One."), Reply("Two."), Reply("Bob's."))
    settings = make_settings(api_keys=KEYS, rate_limit_user="2/minute")
    async with serving(settings) as client:
        for text in ("one", "two"):
            answered = await client.post("/api/v1/chat", json={"message": text}, headers=ALICE)
            assert answered.status == 200

        refused = await client.post("/api/v1/chat", json={"message": "three"}, headers=ALICE)
        streamed = await client.post("/api/v1/chat/stream", json={"message": "four"},
                                     headers=ALICE)
        bobs = await client.post("/api/v1/chat", json={"message": "hi"}, headers=BOB)

        assert refused.status == 429 and streamed.status == 429
        assert refused.content_type == "application/json"
        body = await refused.json()
        seconds = int(refused.headers["Retry-After"])
        assert 1 <= seconds <= 60
        assert body == {"error": f"too many requests; try again in {seconds} s",
                        "retry_after": seconds}
        assert "error" in await streamed.json()
        assert bobs.status == 200  # the limit is per person
        assert await _recorded(client) == 3 and len(llm.requests) == 3


async def test_the_workspace_limit_refuses_everyone_once_reached(
    make_settings: MakeSettings, llm: FakeOpenAI
) -> None:
    llm.script(Reply("Alice's."))
    settings = make_settings(api_keys=KEYS, rate_limit_workspace="1/hour")
    async with serving(settings) as client:
        assert (await client.post("/api/v1/chat", json={"message": "hi"},
                                  headers=ALICE)).status == 200
        refused = await client.post("/api/v1/chat", json={"message": "hi"}, headers=BOB)

        assert refused.status == 429
        assert 3500 <= int(refused.headers["Retry-After"]) <= 3600
        assert await _recorded(client) == 1


async def test_a_malformed_message_is_not_counted(
    make_settings: MakeSettings, llm: FakeOpenAI
) -> None:
    llm.script(Reply("Counted once."))
    async with serving(make_settings(rate_limit_user="1/minute")) as client:
        assert (await client.post("/api/v1/chat", json={"nope": 1})).status == 400
        assert (await client.post("/api/v1/chat", json={"message": "hi"})).status == 200
        assert (await client.post("/api/v1/chat", json={"message": "again"})).status == 429


async def test_the_api_document_declares_the_429_of_the_chat_routes(
    make_settings: MakeSettings,
) -> None:
    async with serving(make_settings()) as client:
        document = await (await client.get("/api/v1/openapi.json")).json()

    for path, method in [("/api/v1/chat", "post"), ("/api/v1/chat/stream", "post"),
                         ("/api/v1/tickets", "post"), ("/api/v1/tickets/{id}", "patch")]:
        refused = document["paths"][path][method]["responses"]["429"]
        assert "Retry-After" in refused["headers"]


async def test_ticket_writes_count_against_the_same_limit(
    make_settings: MakeSettings, llm: FakeOpenAI
) -> None:
    llm.script(Reply("One."))
    async with serving(make_settings(api_keys=KEYS, rate_limit_user="2/minute")) as client:
        assert (await client.post("/api/v1/chat", json={"message": "one"},
                                  headers=ALICE)).status == 200
        opened = await client.post("/api/v1/tickets", json={"title": "Printer jammed"},
                                   headers=ALICE)
        assert opened.status == 201
        number = (await opened.json())["number"]

        refused = await client.post("/api/v1/tickets", json={"title": "Another one"},
                                    headers=ALICE)
        commented = await client.patch(f"/api/v1/tickets/{number}",
                                       json={"comment": "Still jammed"}, headers=ALICE)
        listed = await client.get("/api/v1/tickets", headers=ALICE)

        assert refused.status == 429 and commented.status == 429
        assert int(refused.headers["Retry-After"]) >= 1
        assert "error" in await refused.json()
        tickets = (await listed.json())["tickets"]  # reading is never limited
        assert [t["title"] for t in tickets] == ["Printer jammed"]
        assert tickets[0]["comments_count"] == 0


async def test_refused_messages_are_counted_in_the_metrics(
    make_settings: MakeSettings, llm: FakeOpenAI
) -> None:
    llm.script(Reply("Once."))
    async with serving(make_settings(rate_limit_user="1/minute")) as client:
        await client.post("/api/v1/chat", json={"message": "hi"})
        for _ in range(2):
            assert (await client.post("/api/v1/chat", json={"message": "hi"})).status == 429
        metrics = await (await client.get("/metrics")).text()

    [line] = [m for m in metrics.splitlines()
              if m.startswith("switchboard_messages_total{") and 'outcome="limited"' in m]
    assert 'channel="web"' in line and line.endswith(" 2.0")
