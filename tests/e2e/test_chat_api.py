"""The REST API and its streaming twin against a fake OpenAI-compatible model."""

from __future__ import annotations

import asyncio
import getpass
import json
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import func, select

from adapters.sql.tables import inbox, turns
from core.errors import StorageError
from tests.e2e.conftest import API_KEY, MakeSettings, read_events, services, serving
from tests.fakes.openai_server import CallTools, Fail, FakeOpenAI, Hang, Reply

Client = TestClient[Any, Any]


async def test_a_plain_answer(client: Client, llm: FakeOpenAI) -> None:
    llm.script(Reply("Hello, I am Switchboard."))
    response = await client.post("/api/v1/chat", json={"message": "hi"})
    assert response.status == 200
    body = await response.json()
    assert body["reply"] == "Hello, I am Switchboard."
    assert body["citations"] == [] and body["conversation_id"]
    [request] = llm.requests
    assert request.headers["Authorization"] == f"Bearer {API_KEY}"
    sent = request.json["messages"]
    assert sent[0]["role"] == "system" and sent[-1] == {"role": "user", "content": "hi"}


async def test_a_streamed_answer(client: Client, llm: FakeOpenAI) -> None:
    # A model that takes a moment to start, as real ones do: the status shows first.
    llm.script(Hang(seconds=0.5, then=Reply("Streaming works in several small pieces.",
                                            chunk_size=5)))
    response = await client.post("/api/v1/chat/stream", json={"message": "stream please"})
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/event-stream")
    events = await read_events(response)
    names = [name for name, _ in events]
    assert names[0] == "start" and names[1] == "status" and names[-1] == "done"
    deltas = [data["text"] for name, data in events if name == "delta"]
    assert len(deltas) > 3
    done = events[-1][1]
    assert "".join(deltas) == done["reply"] == "Streaming works in several small pieces."
    assert done["html"] == "<p>Streaming works in several small pieces.</p>\n"
    assert done["conversation_id"] == events[0][1]["conversation_id"]


async def test_a_tool_call_round_trip(client: Client, llm: FakeOpenAI) -> None:
    llm.script(CallTools(calls=[("get_user_info", {})]), Reply("You are the local user."))
    response = await client.post("/api/v1/chat/stream", json={"message": "who am I?"})
    events = await read_events(response)
    tools = [data for name, data in events if name == "tool"]
    assert [(t["tool"], t["state"]) for t in tools] == [
        ("get_user_info", "running"), ("get_user_info", "done")
    ]
    assert {"text": "Looking up your profile…"} in [d for n, d in events if n == "status"]
    assert events[-1][1]["reply"] == "You are the local user."
    tool_message = llm.requests[1].json["messages"][-1]
    assert tool_message["role"] == "tool"
    assert json.loads(tool_message["content"])["id"] == f"web:local:{getpass.getuser()}"


async def test_a_thread_continues_by_id(client: Client, llm: FakeOpenAI) -> None:
    llm.script(Reply("Blue."), Reply("You asked about the sky."))
    first = await (await client.post("/api/v1/chat", json={"message": "sky colour?"})).json()
    cid = first["conversation_id"]
    second = await client.post(
        "/api/v1/chat", json={"message": "what did I ask?", "conversation_id": cid}
    )
    assert (await second.json())["conversation_id"] == cid
    sent = [(m["role"], m["content"]) for m in llm.requests[1].json["messages"][1:]]
    assert sent == [("user", "sky colour?"), ("assistant", "Blue."), ("user", "what did I ask?")]
    history = await (await client.get(f"/api/v1/conversations/{cid}")).json()
    assert [(t["role"], t["content"]) for t in history["turns"]] == [
        ("user", "sky colour?"), ("assistant", "Blue."),
        ("user", "what did I ask?"), ("assistant", "You asked about the sky."),
    ]


async def test_history_survives_a_restart(make_settings: MakeSettings, llm: FakeOpenAI) -> None:
    settings = make_settings()
    llm.script(Reply("Remembered."), Reply("Still here."))
    async with serving(settings) as client:
        body = await (await client.post("/api/v1/chat", json={"message": "remember me"})).json()
    async with serving(settings) as client:
        cid = body["conversation_id"]
        history = await (await client.get(f"/api/v1/conversations/{cid}")).json()
        assert [t["content"] for t in history["turns"]] == ["remember me", "Remembered."]
        again = await client.post("/api/v1/chat", json={"message": "and now?", "conversation_id": cid})
        assert (await again.json())["reply"] == "Still here."
    assert len(llm.requests[1].json["messages"]) == 4


async def test_a_model_error_apologises_keeps_the_message_and_can_be_retried(
    client: Client, llm: FakeOpenAI
) -> None:
    llm.script(Fail(status=500, body={"error": {"message": "boom sk-leak"}}), Reply("Recovered."))
    request = {"message": "are you ok?", "message_id": "msg-1"}
    failed = await client.post("/api/v1/chat", json=request)
    assert failed.status == 503
    body = await failed.json()
    assert body["error"].startswith("Sorry") and body["retryable"] is True
    assert "500" not in body["error"] and "boom" not in body["error"]
    history = await (await client.get(f"/api/v1/conversations/{body['conversation_id']}")).json()
    assert [t["content"] for t in history["turns"]] == ["are you ok?"]

    retried = await client.post("/api/v1/chat", json=request)
    assert retried.status == 200
    assert (await retried.json())["reply"] == "Recovered."
    history = await (await client.get(f"/api/v1/conversations/{body['conversation_id']}")).json()
    assert [t["content"] for t in history["turns"]] == ["are you ok?", "Recovered."]


async def test_a_model_error_while_streaming_ends_with_an_apology_event(
    client: Client, llm: FakeOpenAI
) -> None:
    llm.script(Fail(status=502))
    events = await read_events(await client.post("/api/v1/chat/stream", json={"message": "hi"}))
    name, data = events[-1]
    assert name == "error" and data["error"].startswith("Sorry") and data["retryable"] is True


async def test_the_same_message_id_is_answered_once(client: Client, llm: FakeOpenAI) -> None:
    llm.script(Reply("Only once."))
    request = {"message": "hello", "message_id": "dup-1"}
    first = await (await client.post("/api/v1/chat", json=request)).json()
    second = await (await client.post("/api/v1/chat", json=request)).json()
    streamed = await read_events(await client.post("/api/v1/chat/stream", json=request))
    assert first["reply"] == second["reply"] == streamed[-1][1]["reply"] == "Only once."
    assert first["conversation_id"] == second["conversation_id"] == streamed[-1][1]["conversation_id"]
    assert len(llm.requests) == 1


async def test_a_request_retried_while_it_is_answered_gets_that_answer_once_it_is_stored(
    client: Client, llm: FakeOpenAI
) -> None:
    """A client whose connection dropped sends the message again (the page reconnecting):
    it waits for the answer in progress instead of starting a second one."""
    llm.script(Hang(seconds=0.5, then=Reply("Worth the wait.")))
    request = {"message": "slow question", "message_id": "again-1"}
    first = asyncio.create_task(client.post("/api/v1/chat", json=request))
    await llm.wait_for_requests(1, timeout=10)

    streamed = await read_events(await client.post("/api/v1/chat/stream", json=request))
    plain = await client.post("/api/v1/chat", json=request)

    assert [name for name, _ in streamed] == ["start", "done"]  # the whole answer at once
    assert streamed[-1][1]["reply"] == "Worth the wait."
    assert plain.status == 200 and (await plain.json())["reply"] == "Worth the wait."
    assert (await (await first).json())["reply"] == "Worth the wait."
    assert len(llm.requests) == 1


async def _stored_rows(client: Client) -> tuple[int, int]:
    async with services(client).stores.engine.connect() as conn:
        items = await conn.scalar(select(func.count()).select_from(inbox))
        stored = await conn.scalar(select(func.count()).select_from(turns))
    return items, stored


async def test_bad_input_gets_a_clear_error_and_stores_nothing(client: Client) -> None:
    malformed = await client.post(
        "/api/v1/chat", data=b'{"message": "hi"', headers={"Content-Type": "application/json"}
    )
    assert malformed.status == 400
    assert (await malformed.json())["error"] == "the body must be a JSON object"

    invalid = await client.post("/api/v1/chat", json={"message": "", "colour": "red"})
    assert invalid.status == 400
    problems = (await invalid.json())["problems"]
    assert any(p.startswith("message:") for p in problems) and any("colour" in p for p in problems)

    huge = await client.post("/api/v1/chat/stream", json={"message": "x" * 2_000_000})
    assert huge.status == 413
    assert "Maximum request body size" in (await huge.json())["error"]

    unknown = await client.post(
        "/api/v1/chat", json={"message": "hi", "conversation_id": "does-not-exist"}
    )
    assert unknown.status == 404
    assert (await unknown.json()) == {"error": "unknown conversation"}
    assert (await client.get("/api/v1/conversations/does-not-exist")).status == 404
    assert await _stored_rows(client) == (0, 0)


async def test_api_keys_are_required_when_configured(
    make_settings: MakeSettings, llm: FakeOpenAI
) -> None:
    keys = "alice:alice-key-0123456789,bob:bob-key-0123456789ab"
    llm.script(Reply("Hi Alice."))
    async with serving(make_settings(api_keys=keys)) as client:
        missing = await client.post("/api/v1/chat", json={"message": "hi"})
        assert missing.status == 401
        assert missing.headers["WWW-Authenticate"].startswith("Bearer")
        assert "API key" in (await missing.json())["error"]
        wrong = await client.post(
            "/api/v1/chat", json={"message": "hi"}, headers={"Authorization": "Bearer nope"}
        )
        assert wrong.status == 401

        alice = {"Authorization": "Bearer alice-key-0123456789"}
        ok = await client.post("/api/v1/chat", json={"message": "hi"}, headers=alice)
        assert ok.status == 200
        cid = (await ok.json())["conversation_id"]
        bob = {"Authorization": "Bearer bob-key-0123456789ab"}
        # Bob cannot read or continue Alice's conversation.
        assert (await client.get(f"/api/v1/conversations/{cid}", headers=bob)).status == 404
        post = await client.post(
            "/api/v1/chat", json={"message": "hi", "conversation_id": cid}, headers=bob
        )
        assert post.status == 404
        assert (await client.get("/api/v1/info")).status == 200
        assert await _stored_rows(client) == (1, 2)


async def test_health_and_readiness(client: Client) -> None:
    assert await (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status == 200
    assert await ready.json() == {"status": "ready", "checks": {"database": "ok", "qdrant": "ok"}}


async def test_readiness_fails_when_a_backend_stops_answering(client: Client) -> None:
    await services(client).knowledge.aclose()  # the shard is closed under the running app
    ready = await client.get("/readyz")
    body = await ready.json()
    assert ready.status == 503
    assert body["status"] == "not ready" and body["checks"]["database"] == "ok"
    assert body["checks"]["qdrant"].startswith("error: ")


async def test_offline_mode_says_no_model_is_configured(make_settings: MakeSettings) -> None:
    async with serving(make_settings(openai_base_url=None, openai_api_key=None)) as client:
        body = await (await client.post("/api/v1/chat", json={"message": "hi"})).json()
    assert body["reply"].startswith("No language model is configured")


async def test_the_page_and_info_are_served(client: Client) -> None:
    page = await client.get("/")
    assert page.status == 200 and "/api/v1/chat/stream" in await page.text()
    assert await (await client.get("/api/v1/info")).json() == {
        "name": "Switchboard", "api_key_required": False, "adds_documents": True
    }


async def test_a_database_refusing_writes_gets_503_with_retry_after(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def unavailable(*_: object, **__: object) -> None:
        raise StorageError("recording message failed")

    monkeypatch.setattr(services(client).inbox, "accept", unavailable)
    response = await client.post("/api/v1/chat", json={"message": "hi"})
    assert response.status == 503 and int(response.headers["Retry-After"]) > 0
    assert (await response.json())["error"].startswith("the database is unavailable")
