"""Bad input on the REST API over real HTTP: a 4xx with one log line, never a 500 or a
traceback, and the server keeps answering."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import select

from adapters.sql.tables import turns
from bots.database import upgrade
from core import messages
from core.inbox import Acceptance
from core.messages import ConversationRef, InboundMessage, Sender
from tests.e2e.conftest import (
    MakeSettings,
    fresh_postgres_database,
    services,
    serving,
    settled,
)
from tests.fakes.openai_server import FakeOpenAI, Reply
from tests.fuzzing import no_traceback

Client = TestClient[Any, Any]
KEY = "alice-key-0123456789"
ALICE = {"Authorization": f"Bearer {KEY}"}
NESTED = ("[" * 100_000 + "]" * 100_000).encode()


@pytest.fixture
async def api(make_settings: MakeSettings) -> AsyncIterator[Client]:
    async with serving(make_settings(api_keys=f"alice:{KEY}")) as client:
        yield client



async def still_answers(api: Client) -> None:
    response = await api.get("/api/v1/tickets", headers=ALICE)
    assert response.status == 200


@pytest.mark.parametrize("path", ["/api/v1/chat", "/api/v1/chat/stream", "/api/v1/tickets"])
@pytest.mark.parametrize("body", [
    NESTED,
    b'{"message": ' + b'{"a": ' * 50_000 + b"1" + b"}" * 50_000 + b"}",
], ids=["arrays", "objects-in-a-field"])
async def test_deeply_nested_json_is_refused_with_400(
    api: Client, caplog: pytest.LogCaptureFixture, path: str, body: bytes
) -> None:
    response = await api.post(path, data=body, headers={
        **ALICE, "Content-Type": "application/json"})

    assert response.status == 400
    assert "error" in await response.json()
    await still_answers(api)
    no_traceback(caplog)


LONE_SURROGATES = {
    "escaped": b'{"title": "broken \\ud800 printer"}',
    "trailing escape": b'{"title": "broken \\udc00"}',
    "encoded": '{"title": "broken \ud800"}'.encode("utf-8", "surrogatepass"),
}


@pytest.mark.parametrize("body", LONE_SURROGATES.values(), ids=list(LONE_SURROGATES))
async def test_a_lone_surrogate_in_a_ticket_title_is_refused_with_400(
    api: Client, caplog: pytest.LogCaptureFixture, body: bytes
) -> None:
    response = await api.post("/api/v1/tickets", data=body, headers={
        **ALICE, "Content-Type": "application/json"})

    assert response.status == 400
    listed = await api.get("/api/v1/tickets", headers=ALICE)
    assert (await listed.json())["tickets"] == []
    no_traceback(caplog)


async def test_a_lone_surrogate_in_chat_text_is_refused_with_400(
    api: Client, caplog: pytest.LogCaptureFixture
) -> None:
    response = await api.post("/api/v1/chat", data=b'{"message": "hi \\ud83d"}', headers={
        **ALICE, "Content-Type": "application/json"})

    assert response.status == 400
    await still_answers(api)
    no_traceback(caplog)


async def raw_request(api: Client, head: bytes) -> int:
    """`head` sent as it is (aiohttp's client would not send every header byte): the
    response's status."""
    reader, writer = await asyncio.open_connection(api.host, api.port)
    try:
        writer.write(head)
        await writer.drain()
        status_line = await reader.readline()
    finally:
        writer.close()
        await writer.wait_closed()
    return int(status_line.split()[1])


@pytest.mark.parametrize("token", [
    "Bearer ключ-0123456789".encode(),
    b"Bearer \xff\xfe-0123456789",
    b"Bearer alice-key-0123456789\xc3\xa9",
    b"Bearer sbk_\xff\xfe0123456789",
], ids=["utf-8", "latin-1-bytes", "a-key-and-more", "a-stored-key-prefix"])
async def test_a_non_ascii_bearer_token_is_refused_with_401(
    api: Client, caplog: pytest.LogCaptureFixture, token: bytes
) -> None:
    status = await raw_request(api, b"GET /api/v1/tickets HTTP/1.1\r\nHost: localhost\r\n"
                               b"Authorization: " + token + b"\r\nConnection: close\r\n\r\n")

    assert status == 401
    await still_answers(api)
    no_traceback(caplog)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
async def on_both(
    request: pytest.FixtureRequest, make_settings: MakeSettings,
    postgres_unreachable: str | None,
) -> AsyncIterator[Client]:
    """The API with a key, on SQLite and on a fresh, migrated PostgreSQL database."""
    if request.param == "sqlite":
        async with serving(make_settings(api_keys=f"alice:{KEY}")) as client:
            yield client
        return
    if postgres_unreachable:
        pytest.skip(postgres_unreachable)
    async with fresh_postgres_database("sb_nul") as url:
        settings = make_settings(api_keys=f"alice:{KEY}", database_url=url)
        await upgrade(settings)
        async with serving(settings) as client:
            yield client


async def stored_turns(api: Client) -> list[str]:
    async with services(api).stores.engine.connect() as conn:
        return list((await conn.execute(select(turns.c.content).order_by(turns.c.id))).scalars())


async def test_nul_in_a_chat_message_is_stripped_the_same_on_both_databases(
    on_both: Client, llm: FakeOpenAI, caplog: pytest.LogCaptureFixture
) -> None:
    llm.script(Reply("Answered."), Reply("And again."))
    response = await on_both.post("/api/v1/chat", data=b'{"message": "hel\\u0000lo\\u0000"}',
                                  headers={**ALICE, "Content-Type": "application/json"})

    assert response.status == 200
    assert (await response.json())["reply"] == "Answered."
    assert llm.requests[0].json["messages"][-1] == {"role": "user", "content": "hello"}
    # Nothing is wedged behind it.
    again = await on_both.post("/api/v1/chat", json={"message": "next"}, headers=ALICE)
    assert (await again.json())["reply"] == "And again."
    assert await stored_turns(on_both) == ["hello", "Answered.", "next", "And again."]
    no_traceback(caplog)


async def test_nul_in_a_ticket_is_stripped_the_same_on_both_databases(
    on_both: Client, caplog: pytest.LogCaptureFixture
) -> None:
    response = await on_both.post("/api/v1/tickets", headers=ALICE, json={
        "title": "Printer\x00 jammed", "description": "Floor\x00 2"})
    assert response.status == 201
    ticket = await response.json()
    assert (ticket["title"], ticket["description"]) == ("Printer jammed", "Floor 2")

    commented = await on_both.patch(f"/api/v1/tickets/{ticket['number']}", headers=ALICE,
                                    json={"comment": "still\x00 jammed"})

    assert commented.status == 200
    assert [c["text"] for c in (await commented.json())["comments"]] == ["still jammed"]
    no_traceback(caplog)


async def test_a_nul_in_a_conversation_id_is_refused_with_400_on_both_databases(
    on_both: Client, llm: FakeOpenAI, caplog: pytest.LogCaptureFixture
) -> None:
    # An id is not cleaned (it would be another id); PostgreSQL could not even look it up.
    response = await on_both.post("/api/v1/chat", headers=ALICE, json={
        "message": "hi", "conversation_id": "c1\x00"})

    assert response.status == 400
    assert llm.requests == []
    no_traceback(caplog)


async def test_a_nul_message_an_older_version_queued_is_answered_and_wedges_nothing(
    on_both: Client, llm: FakeOpenAI, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Queued as before NULs were stripped: the inbox keeps the payload as JSON, where
    # PostgreSQL allows "\u0000"; writing its turn failed, and claiming it failed forever.
    sb = services(on_both)
    sender = Sender(id="web:local:alice", name="alice")
    with monkeypatch.context() as old_version:
        old_version.setattr(messages, "storable", lambda text: text)
        old = InboundMessage(
            id="alice/old-nul", sender=sender, text="queued\x00 before", is_direct=True,
            conversation=ConversationRef(channel="web", tenant="local", conversation="c-old"),
            sent_at=datetime.now(UTC),
        )
        await sb.inbox.accept(Acceptance(message=old, open_conversation=True))
    sb.worker.notify()
    await settled(on_both)

    response = await on_both.post("/api/v1/chat", json={"message": "after"}, headers=ALICE)

    assert response.status == 200
    assert "queued before" in await stored_turns(on_both)
    assert [r.json["messages"][-1]["content"] for r in llm.requests] == ["queued before", "after"]
    no_traceback(caplog)
