"""Ticket webhooks through real HTTP: signed, retried when worth it, never blocking the
chat, and stopping cleanly."""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest

from adapters.webhooks.delivery import RetryPolicy, TicketWebhook
from adapters.webhooks.signing import verify_signature
from core.messages import ConversationRef
from core.tickets.model import Comment, Ticket, TicketChange
from tests.fakes.webhook_receiver import FakeWebhookReceiver, Hang, Respond

SECRET = "whsec-never-log-me-7c1d"
FAST = RetryPolicy(attempts=4, backoff=0.01, max_backoff=0.05)
THREAD = ConversationRef(channel="slack", tenant="T1", conversation="C1", thread="1.000")
WHEN = datetime(2025, 5, 1, 9, 30, tzinfo=UTC)


def change(ticket_id: int = 42, kind: Any = "status") -> TicketChange:
    ticket = Ticket(
        id=ticket_id, title="Printer on floor 2", description="It jams.", priority="high",
        status="resolved", requester="slack:T1:U1", requester_name="Ada Lovelace",
        origin=THREAD, origin_link="https://example.slack.com/archives/C1/p1000",
        assignee="slack:T1:U9", created_at=WHEN, updated_at=WHEN,
        comments=(Comment(author="slack:T1:U9", author_name="Grace", text="On it",
                          created_at=WHEN),),
    )
    return TicketChange(kind=kind, ticket=ticket, actor="slack:T1:U9",
                        previous_status="open" if kind == "status" else None)


@pytest.fixture
async def receiver() -> AsyncIterator[FakeWebhookReceiver]:
    async with FakeWebhookReceiver() as fake:
        yield fake


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


def webhook_to(url: str, session: aiohttp.ClientSession, **options: Any) -> TicketWebhook:
    return TicketWebhook(url, SECRET, session, **{"retry": FAST, "timeout": 2.0, **options})


async def test_a_change_arrives_as_signed_json(
    receiver: FakeWebhookReceiver, session: aiohttp.ClientSession
) -> None:
    async with webhook_to(receiver.url, session) as webhook:
        await webhook(change())
        [got] = await receiver.wait_for(1)

    assert verify_signature(SECRET, got.timestamp, got.body, got.signature, now=time.time())
    assert got.headers["Content-Type"] == "application/json"
    assert got.headers["X-Switchboard-Event"] == "ticket.status_changed"
    body = got.json()
    assert body["event"] == "ticket.status_changed"
    assert body["actor"] == "slack:T1:U9" and body["previous_status"] == "open"
    assert datetime.fromisoformat(body["occurred_at"]).tzinfo is not None
    assert body["ticket"] == {
        "number": "TCK-1042", "title": "Printer on floor 2", "description": "It jams.",
        "priority": "high", "status": "resolved", "requester": "slack:T1:U1",
        "requester_name": "Ada Lovelace", "assignee": "slack:T1:U9",
        "origin": {"channel": "slack", "tenant": "T1", "conversation": "C1",
                   "thread": "1.000"},
        "origin_link": "https://example.slack.com/archives/C1/p1000",
        "created_at": "2025-05-01T09:30:00+00:00", "updated_at": "2025-05-01T09:30:00+00:00",
        "comments_count": 1,
        "comments": [{"author": "slack:T1:U9", "author_name": "Grace", "text": "On it",
                      "created_at": "2025-05-01T09:30:00+00:00"}],
    }


@pytest.mark.parametrize(
    ("kind", "event"),
    [("created", "ticket.created"), ("commented", "ticket.commented"),
     ("assigned", "ticket.assigned")],
)
async def test_each_kind_of_change_has_its_event(
    receiver: FakeWebhookReceiver, session: aiohttp.ClientSession, kind: str, event: str
) -> None:
    async with webhook_to(receiver.url, session) as webhook:
        await webhook(change(kind=kind))
        [got] = await receiver.wait_for(1)

    assert got.json()["event"] == event and got.json()["previous_status"] is None


async def test_503_twice_then_200_is_delivered_on_the_third_try_with_one_delivery_id(
    receiver: FakeWebhookReceiver, session: aiohttp.ClientSession
) -> None:
    receiver.script(Respond(503), Respond(503))
    async with webhook_to(receiver.url, session) as webhook:
        await webhook(change())
        await receiver.wait_for(3)

    assert len(receiver.received) == 3  # delivered: no fourth attempt
    assert len({r.delivery_id for r in receiver.received}) == 1
    assert [r.headers["X-Switchboard-Attempt"] for r in receiver.received] == ["1", "2", "3"]
    assert all(verify_signature(SECRET, r.timestamp, r.body, r.signature, now=time.time())
               for r in receiver.received)


async def test_a_400_is_not_retried(
    receiver: FakeWebhookReceiver, session: aiohttp.ClientSession,
    caplog: pytest.LogCaptureFixture,
) -> None:
    receiver.script(Respond(400))
    async with webhook_to(receiver.url, session) as webhook:
        await webhook(change(ticket_id=1))
        await webhook(change(ticket_id=2))
        first, second = await receiver.wait_for(2)

    # Deliveries go in order, one at a time: the next request is already the next change.
    assert first.json()["ticket"]["number"] == "TCK-1001"
    assert second.json()["ticket"]["number"] == "TCK-1002"
    assert len(receiver.received) == 2
    assert f"refused ticket.status_changed of TCK-1001 (delivery {first.delivery_id})" \
        in caplog.text


async def test_a_timeout_is_retried_with_the_same_delivery_id(
    receiver: FakeWebhookReceiver, session: aiohttp.ClientSession
) -> None:
    receiver.script(Hang())
    async with webhook_to(receiver.url, session, timeout=0.2) as webhook:
        await webhook(change())
        first, second = await receiver.wait_for(2)

    assert first.delivery_id == second.delivery_id
    assert second.headers["X-Switchboard-Attempt"] == "2"


async def test_429_waits_as_long_as_retry_after_asks(
    receiver: FakeWebhookReceiver, session: aiohttp.ClientSession
) -> None:
    receiver.script(Respond(429, {"Retry-After": "1"}))
    async with webhook_to(receiver.url, session) as webhook:
        await webhook(change())
        first, second = await receiver.wait_for(2, timeout=5)

    assert first.delivery_id == second.delivery_id
    assert second.at - first.at >= 0.9  # the backoff alone would be ~0.01 s


def test_the_pause_grows_with_jitter_and_honours_retry_after() -> None:
    # Reading the header itself is tested in tests/unit/test_retry_after.py.
    policy = RetryPolicy(backoff=1.0, max_backoff=30.0, max_retry_after=120.0)

    assert [policy.delay(n, None, lambda: 1.0) for n in (1, 2, 3, 6, 9)] == [1, 2, 4, 30, 30]
    assert policy.delay(3, None, lambda: 0.0) == 2.0  # jitter: half to all of the backoff
    assert policy.delay(1, 10.0, lambda: 0.5) == 10.0
    assert policy.delay(1, 3600.0, lambda: 0.5) == 120.0


async def test_the_listener_returns_at_once_while_the_receiver_hangs(
    receiver: FakeWebhookReceiver, session: aiohttp.ClientSession
) -> None:
    receiver.script(Hang())
    async with webhook_to(receiver.url, session, timeout=60) as webhook:
        await webhook(change(ticket_id=1))
        await receiver.hanging.wait()  # the sender is stuck inside the first POST

        for ticket_id in (2, 3, 4):
            await webhook(change(ticket_id=ticket_id))

        # Every change was handed over while the receiver still held the first request.
        assert receiver.hanging.is_set() and len(receiver.received) == 1
        assert webhook.pending == 4
        receiver.release()
        delivered = await receiver.wait_for(4)

    assert [r.json()["ticket"]["number"] for r in delivered] == [
        "TCK-1001", "TCK-1002", "TCK-1003", "TCK-1004"]


async def test_a_full_queue_drops_the_oldest(
    receiver: FakeWebhookReceiver, session: aiohttp.ClientSession,
    caplog: pytest.LogCaptureFixture,
) -> None:
    receiver.script(Hang())
    async with webhook_to(receiver.url, session, timeout=60, queue_size=2) as webhook:
        await webhook(change(ticket_id=1))
        await receiver.hanging.wait()
        for ticket_id in (2, 3, 4):
            await webhook(change(ticket_id=ticket_id))
        receiver.release()
        delivered = await receiver.wait_for(3)

    assert [r.json()["ticket"]["number"] for r in delivered] == [
        "TCK-1001", "TCK-1003", "TCK-1004"]
    assert "dropped the oldest, ticket.status_changed of TCK-1002" in caplog.text


async def test_shutdown_sends_what_is_queued(
    receiver: FakeWebhookReceiver, session: aiohttp.ClientSession
) -> None:
    async with webhook_to(receiver.url, session) as webhook:
        for ticket_id in (1, 2, 3):
            await webhook(change(ticket_id=ticket_id))

    assert len(receiver.received) == 3


async def test_shutdown_stops_the_sender_within_the_drain_time(
    receiver: FakeWebhookReceiver, session: aiohttp.ClientSession,
    caplog: pytest.LogCaptureFixture,
) -> None:
    receiver.script(Hang())
    webhook = webhook_to(receiver.url, session, timeout=60, drain_seconds=0.1)
    webhook.start()
    await webhook(change(ticket_id=1))
    await webhook(change(ticket_id=2))
    await receiver.hanging.wait()

    await webhook.aclose()

    assert not [t for t in asyncio.all_tasks() if t.get_name() == "ticket-webhook"]
    assert webhook.pending == 0
    assert "stopped with 2 deliveries unsent" in caplog.text
    await webhook(change(ticket_id=3))  # after shutdown: dropped, logged, never raised
    assert "shut down; dropped ticket.status_changed of TCK-1003" in caplog.text
    assert len(receiver.received) == 1


async def test_giving_up_is_logged_with_the_delivery_id_and_never_the_secret(
    session: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with socket.socket() as probe:  # a loopback port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/hooks"

    async with webhook_to(url, session) as webhook:
        await webhook(change())
        await webhook.join()

    assert "cannot connect" in caplog.text
    gave_up = [r for r in caplog.records if "gave up" in r.getMessage()]
    assert len(gave_up) == 1 and gave_up[0].levelno == logging.ERROR
    assert "after 4 attempts" in gave_up[0].getMessage()
    assert SECRET not in caplog.text and SECRET not in repr(webhook)
