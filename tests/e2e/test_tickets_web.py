"""Tickets on the web: the REST API, `/ticket …` typed in the chat, and the model's
tools, each over real HTTP with two users (alice, bob) and an agent (carol)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from core.tickets.model import TITLE_MAX
from tests.e2e.conftest import MakeSettings, read_events, services, serving
from tests.fakes.openai_server import CallTools, FakeOpenAI, Reply

Client = TestClient[Any, Any]

KEYS = {
    "alice": "alice-key-0123456789", "bob": "bob-key-0123456789ab",
    "carol": "carol-key-0123456789",
}
ALICE, BOB, CAROL = ({"Authorization": f"Bearer {KEYS[u]}"} for u in ("alice", "bob", "carol"))


@pytest.fixture
async def api(make_settings: MakeSettings) -> AsyncIterator[Client]:
    settings = make_settings(
        api_keys=",".join(f"{user}:{key}" for user, key in KEYS.items()),
        ticket_agents="web:local:carol",
    )
    async with serving(settings) as client:
        yield client


async def _open(api: Client, title: str = "Printer is broken", **fields: Any) -> dict[str, Any]:
    response = await api.post("/api/v1/tickets", json={"title": title, **fields}, headers=ALICE)
    assert response.status == 201, await response.text()
    body: dict[str, Any] = await response.json()
    return body


async def _chat(api: Client, message: str, who: dict[str, str], **fields: Any) -> dict[str, Any]:
    response = await api.post("/api/v1/chat", json={"message": message, **fields}, headers=who)
    assert response.status == 200, await response.text()
    body: dict[str, Any] = await response.json()
    return body


async def test_create_list_show_and_patch_a_ticket(api: Client) -> None:
    response = await api.post(
        "/api/v1/tickets", headers=ALICE,
        json={"title": "VPN drops", "description": "Every hour.", "priority": "high"},
    )
    assert response.status == 201
    created = await response.json()
    number = created["number"]
    assert number.startswith("TCK-") and response.headers["Location"] == f"/api/v1/tickets/{number}"
    assert created | {"created_at": None, "updated_at": None} == {
        "number": number, "title": "VPN drops", "description": "Every hour.", "priority": "high",
        "status": "open", "requester": "web:local:alice", "requester_name": "alice",
        "assignee": None, "origin": None, "origin_link": None,
        "created_at": None, "updated_at": None, "comments_count": 0, "comments": [],
    }
    assert created["created_at"].endswith("+00:00")

    listed = await (await api.get("/api/v1/tickets", headers=ALICE)).json()
    assert [t["number"] for t in listed["tickets"]] == [number]
    numeric = number.removeprefix("TCK-")
    assert await (await api.get(f"/api/v1/tickets/{numeric}", headers=ALICE)).json() == created

    patched = await api.patch(
        f"/api/v1/tickets/{number}", json={"status": "closed", "comment": "Fixed itself."},
        headers=ALICE,
    )
    assert patched.status == 200
    body = await patched.json()
    assert body["status"] == "closed"
    assert [(c["author"], c["author_name"], c["text"]) for c in body["comments"]] == [
        ("web:local:alice", "alice", "Fixed itself.")
    ]
    assert (await (await api.get("/api/v1/tickets", headers=ALICE)).json())["tickets"] == []
    with_closed = await (await api.get("/api/v1/tickets?include_closed=true", headers=ALICE)).json()
    assert [t["status"] for t in with_closed["tickets"]] == ["closed"]
    reopened = await api.patch(f"/api/v1/tickets/{number}", json={"status": "open"}, headers=ALICE)
    assert (await reopened.json())["status"] == "open"


async def test_another_persons_ticket_is_not_found_and_stays_unchanged(api: Client) -> None:
    ticket = await _open(api)
    number = ticket["number"]
    missing = await api.get("/api/v1/tickets/TCK-99999", headers=BOB)
    theirs = await api.get(f"/api/v1/tickets/{number}", headers=BOB)
    assert missing.status == theirs.status == 404
    assert await missing.json() == {"error": "There is no ticket TCK-99999 of yours."}
    assert await theirs.json() == {"error": f"There is no ticket {number} of yours."}
    for change in ({"status": "closed"}, {"comment": "mine now"}):
        response = await api.patch(f"/api/v1/tickets/{number}", json=change, headers=BOB)
        assert response.status == 404
        assert await response.json() == {"error": f"There is no ticket {number} of yours."}
    assert (await (await api.get("/api/v1/tickets?all=true", headers=BOB)).json())["tickets"] == []
    assert await (await api.get(f"/api/v1/tickets/{number}", headers=ALICE)).json() == ticket


async def test_an_agent_sees_everyones_tickets_and_sets_any_status(api: Client) -> None:
    ticket = await _open(api)
    await api.post("/api/v1/tickets", json={"title": "Bob's screen"}, headers=BOB)
    own = await (await api.get("/api/v1/tickets", headers=CAROL)).json()
    assert own["tickets"] == []
    everyone = await (await api.get("/api/v1/tickets?all=true", headers=CAROL)).json()
    assert {t["requester"] for t in everyone["tickets"]} == {"web:local:alice", "web:local:bob"}
    # Only an agent may set "in progress"; the requester gets a one-line refusal.
    refused = await api.patch(
        f"/api/v1/tickets/{ticket['number']}", json={"status": "in_progress"}, headers=ALICE
    )
    assert refused.status == 400
    assert (await refused.json())["error"] == (
        "Only the support team can change that; you can close it."
    )
    moved = await api.patch(
        f"/api/v1/tickets/{ticket['number']}", json={"status": "in progress"}, headers=CAROL
    )
    assert (await moved.json())["status"] == "in_progress"


async def test_bad_input_gets_one_clear_error_and_changes_nothing(api: Client) -> None:
    assert (await api.get("/api/v1/tickets")).status == 401
    assert (await api.post("/api/v1/tickets", json={"title": "x"})).status == 401
    ticket = await _open(api)
    url = f"/api/v1/tickets/{ticket['number']}"

    malformed = await api.post(
        "/api/v1/tickets", data=b'{"title": "x"',
        headers={**ALICE, "Content-Type": "application/json"},
    )
    assert malformed.status == 400
    assert await malformed.json() == {"error": "the body must be a JSON object"}

    unknown = await api.post(
        "/api/v1/tickets", json={"title": "x", "requester": "bob"}, headers=ALICE
    )
    assert unknown.status == 400
    assert any(p.startswith("requester:") for p in (await unknown.json())["problems"])

    long_title = "x" * (TITLE_MAX + 5)
    too_long = await api.post("/api/v1/tickets", json={"title": long_title}, headers=ALICE)
    assert too_long.status == 400
    assert await too_long.json() == {
        "error": f"The title is {TITLE_MAX + 5} characters; keep it under {TITLE_MAX}."
    }
    priority = await api.post(
        "/api/v1/tickets", json={"title": "x", "priority": "asap"}, headers=ALICE
    )
    assert (await priority.json())["error"].startswith("Priority must be one of low, medium")

    for patch in ({}, {"colour": "red"}, {"status": "closed", "comment": "x" * 5000},
                  {"status": "done"}):
        response = await api.patch(url, json=patch, headers=ALICE)
        assert response.status == 400, patch
    assert (await api.patch(url, data=b"nope", headers=ALICE)).status == 400
    assert (await api.get("/api/v1/tickets?all=maybe", headers=ALICE)).status == 400
    assert (await api.get("/api/v1/tickets/not-a-number", headers=ALICE)).status == 404

    listed = await (await api.get("/api/v1/tickets?include_closed=true", headers=ALICE)).json()
    assert listed["tickets"] == [ticket]


async def test_ticket_typed_in_the_chat_is_answered_without_the_model(
    api: Client, llm: FakeOpenAI
) -> None:
    body = await _chat(api, "/ticket new Printer is broken", ALICE, message_id="t-1")
    assert body["reply"].startswith("Opened **TCK-") and "Printer is broken" in body["reply"]
    assert "<strong>TCK-" in body["html"]
    [ticket] = (await (await api.get("/api/v1/tickets", headers=ALICE)).json())["tickets"]
    assert ticket["title"] == "Printer is broken" and ticket["requester"] == "web:local:alice"
    conv = await services(api).conversations.get(body["conversation_id"])
    assert ticket["origin"] == {
        "channel": "web", "tenant": "local", "conversation": conv.ref.conversation,
        "thread": None,
    }

    # A retried request (same message id) gets the same answer, not a second ticket.
    again = await _chat(api, "/ticket new Printer is broken", ALICE, message_id="t-1")
    assert again["reply"] == body["reply"] and again["conversation_id"] == body["conversation_id"]
    listed = await _chat(api, "/ticket list", ALICE, conversation_id=body["conversation_id"])
    assert ticket["number"] in listed["reply"] and listed["reply"].count("TCK-") == 1

    history = await (await api.get(
        f"/api/v1/conversations/{body['conversation_id']}", headers=ALICE
    )).json()
    assert [(t["role"], t["content"]) for t in history["turns"]] == [
        ("user", "/ticket new Printer is broken"), ("assistant", body["reply"]),
        ("user", "/ticket list"), ("assistant", listed["reply"]),
    ]

    shown = await _chat(api, f"/ticket show {ticket['number']}", BOB)
    assert shown["reply"] == f"There is no ticket {ticket['number']} of yours."
    closed = await _chat(api, f"/ticket close {ticket['number']}", BOB)
    assert closed["reply"] == shown["reply"]
    assert llm.requests == []
    assert (await (await api.get(f"/api/v1/tickets/{ticket['number']}", headers=ALICE)).json())[
        "status"] == "open"


async def test_ticket_in_the_streamed_chat_sends_the_usual_events(
    api: Client, llm: FakeOpenAI
) -> None:
    request = {"message": "/ticket help", "message_id": "help-1"}
    response = await api.post("/api/v1/chat/stream", json=request, headers=ALICE)
    events = await read_events(response)
    assert [name for name, _ in events] == ["start", "delta", "done"]
    done = events[-1][1]
    assert done["reply"].startswith("**Tickets**") and done["conversation_id"]
    assert events[1][1]["text"] == done["reply"]
    retried = await read_events(await api.post("/api/v1/chat/stream", json=request, headers=ALICE))
    assert retried[-1][1]["reply"] == done["reply"]
    assert llm.requests == []


async def test_the_model_opens_tickets_only_for_the_caller(api: Client, llm: FakeOpenAI) -> None:
    llm.script(
        CallTools(calls=[("create_ticket", {
            "title": "Laptop", "description": "x", "requester": "web:local:bob",
        })]),
        CallTools(calls=[("create_ticket", {
            "title": "Bob's laptop will not boot", "description": "Open this for bob, please.",
            "priority": "urgent",
        })]),
        Reply("Opened it."),
    )
    body = await _chat(api, "open a ticket for bob: his laptop will not boot", ALICE)
    assert body["reply"] == "Opened it."

    schema = next(
        t["function"]["parameters"] for t in llm.requests[0].json["tools"]
        if t["function"]["name"] == "create_ticket"
    )
    assert set(schema["properties"]) == {"title", "description", "priority"}
    assert schema.get("additionalProperties") is False
    refused = llm.requests[1].json["messages"][-1]
    assert refused["role"] == "tool" and "Invalid arguments" in refused["content"]
    assert "requester" in refused["content"]
    opened = llm.requests[2].json["messages"][-1]["content"]
    assert opened.startswith("Opened TCK-")

    [ticket] = (await (await api.get("/api/v1/tickets", headers=ALICE)).json())["tickets"]
    assert ticket["requester"] == "web:local:alice" and ticket["priority"] == "urgent"
    assert ticket["origin"]["channel"] == "web"
    assert (await (await api.get("/api/v1/tickets", headers=BOB)).json())["tickets"] == []


async def test_telling_the_model_to_close_someone_elses_ticket_changes_nothing(
    api: Client, llm: FakeOpenAI
) -> None:
    ticket = await _open(api)
    llm.script(
        CallTools(calls=[("close_ticket", {"number": ticket["number"]})]),
        Reply("I couldn't find that ticket."),
    )
    body = await _chat(api, f"close {ticket['number']}, I'm allowed to", BOB)
    assert body["reply"] == "I couldn't find that ticket."
    result = llm.requests[1].json["messages"][-1]
    assert result["role"] == "tool"
    assert result["content"] == f"Error: There is no ticket {ticket['number']} of yours."
    still = await (await api.get(f"/api/v1/tickets/{ticket['number']}", headers=ALICE)).json()
    assert still == ticket  # open, no comment, same updated_at


async def test_a_failed_ticket_command_apologises_and_a_retry_answers_it(
    api: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    tickets = services(api).tickets
    working = tickets.create

    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise ConnectionError("database went away")

    monkeypatch.setattr(tickets, "create", broken)
    request = {"message": "/ticket new Printer is broken", "message_id": "t-9"}
    failed = await api.post("/api/v1/chat", json=request, headers=ALICE)
    assert failed.status == 503
    body = await failed.json()
    assert body["error"].startswith("Sorry") and body["retryable"] is True
    assert "database" not in body["error"]

    monkeypatch.setattr(tickets, "create", working)
    retried = await _chat(api, request["message"], ALICE, message_id="t-9")
    assert retried["reply"].startswith("Opened **TCK-")
    assert retried["conversation_id"] == body["conversation_id"]
    assert len((await (await api.get("/api/v1/tickets", headers=ALICE)).json())["tickets"]) == 1
