"""`GET /metrics` of the real app over HTTP, its model the fake OpenAI server: the counters
move as messages are answered, refused or apologised for, the inbox gauges are read from
the database when scraped, and the endpoint is guarded like the API."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp.test_utils import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import update

from adapters.sql.tables import inbox
from core.inbox import Acceptance
from core.messages import ConversationRef, InboundMessage, Sender
from tests.e2e.conftest import MakeSettings, services, settled, serving
from tests.fakes.openai_server import CallTools, Fail, FakeOpenAI, Reply

Client = TestClient[Any, Any]
OPS_KEY = "ops-key-0123456789abcdef"


async def scrape(client: Client, headers: Mapping[str, str] | None = None) -> dict[Any, float]:
    """Every sample of `/metrics`: (name, sorted labels) → value."""
    response = await client.get("/metrics", headers=headers)
    assert response.status == 200, await response.text()
    assert response.headers["Content-Type"].startswith("text/plain")
    samples: dict[Any, float] = {}
    for family in text_string_to_metric_families(await response.text()):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def value(samples: Mapping[Any, float], name: str, **labels: str) -> float:
    """The sample with exactly these labels (0 when it has not been counted yet)."""
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def total(samples: Mapping[Any, float], name: str, **labels: str) -> float:
    """The sum over every sample of `name` that has at least these labels."""
    return sum(v for (n, ls), v in samples.items()
               if n == name and labels.items() <= dict(ls).items())


async def test_counters_move_as_messages_are_answered(client: Client, llm: FakeOpenAI) -> None:
    before = await scrape(client)
    assert total(before, "switchboard_messages_total") == 0
    web = {"role": "all", "channel": "web"}

    llm.script(Reply("Hello there."))
    first = await client.post("/api/v1/chat", json={"message": "hi", "message_id": "m1"})
    assert first.status == 200
    again = await client.post("/api/v1/chat", json={"message": "hi", "message_id": "m1"})
    assert (await again.json())["reply"] == "Hello there."  # the stored answer, not a new one
    await settled(client)
    after = await scrape(client)

    assert value(after, "switchboard_messages_received_total", **web) == 2
    assert value(after, "switchboard_messages_total", **web, outcome="answered") == 1
    assert value(after, "switchboard_messages_total", **web, outcome="duplicate") == 1
    assert value(after, "switchboard_duplicates_refused_total", **web, status="done") == 1
    assert value(after, "switchboard_first_sign_seconds_count", **web) == 1
    assert value(after, "switchboard_first_token_seconds_count", **web) == 1
    model = {"role": "all", "model": "fake-model"}
    assert value(after, "switchboard_model_seconds_count", **model, outcome="ok") == 1
    assert value(after, "switchboard_model_first_token_seconds_count", **model) == 1
    assert value(after, "switchboard_model_tokens_total", **model, direction="in") > 0
    assert value(after, "switchboard_model_tokens_total", **model, direction="out") > 0
    # The context searched the knowledge index (empty here) once.
    assert value(after, "switchboard_retrieval_seconds_count", role="all", outcome="ok") == 1


async def test_tool_calls_and_apologies_are_counted(client: Client, llm: FakeOpenAI) -> None:
    llm.script(
        CallTools(calls=[("get_user_info", {}), ("made_up_tool", {})]), Reply("Done."),
        Fail(status=400, body={"error": {"message": "bad request"}}),
    )
    assert (await client.post("/api/v1/chat", json={"message": "who am I?"})).status == 200
    failed = await client.post("/api/v1/chat", json={"message": "again"})
    assert failed.status == 503  # the apology
    await settled(client)
    samples = await scrape(client)

    tools = {"role": "all"}
    assert value(samples, "switchboard_tool_calls_total", **tools, tool="get_user_info",
                 outcome="ok") == 1
    # A name the model made up is counted, under one label for every such name.
    assert value(samples, "switchboard_tool_calls_total", **tools, tool="unknown",
                 outcome="failed") == 1
    web = {"role": "all", "channel": "web"}
    assert value(samples, "switchboard_messages_total", **web, outcome="answered") == 1
    assert value(samples, "switchboard_messages_total", **web, outcome="apologised") == 1
    assert value(samples, "switchboard_apologies_total", **web, reason="model_error") == 1
    assert value(samples, "switchboard_model_seconds_count", role="all", model="fake-model",
                 outcome="error") == 1


async def test_inbox_depth_and_oldest_age_are_read_when_scraped(
    make_settings: MakeSettings,
) -> None:
    # The web role answers nothing: what it records waits for a worker.
    async with serving(make_settings(), role="web") as client:
        sb = services(client)
        empty = await scrape(client)
        assert value(empty, "switchboard_inbox_depth", role="web", status="pending") == 0
        assert value(empty, "switchboard_inbox_oldest_pending_age_seconds", role="web") == 0
        for n in (1, 2):
            await sb.inbox.accept(Acceptance(message=_message(f"m{n}")))
        # The first was recorded an hour ago, as if no worker had been running since.
        async with sb.stores.engine.begin() as conn:
            await conn.execute(update(inbox).where(inbox.c.message_key == "m1")
                               .values(created_at=datetime.now(UTC) - timedelta(hours=1)))
        samples = await scrape(client)

    assert value(samples, "switchboard_inbox_depth", role="web", status="pending") == 2
    assert value(samples, "switchboard_inbox_depth", role="web", status="processing") == 0
    assert value(samples, "switchboard_inbox_oldest_pending_age_seconds", role="web") >= 3600
    assert value(samples, "switchboard_messages_received_total", role="web", channel="web") == 2


async def test_metrics_need_an_api_key_when_keys_are_set(make_settings: MakeSettings) -> None:
    async with serving(make_settings(api_keys=f"ops:{OPS_KEY}")) as client:
        refused = await client.get("/metrics")
        assert refused.status == 401
        assert refused.headers["WWW-Authenticate"].startswith("Bearer")
        wrong = await client.get("/metrics", headers={"Authorization": "Bearer not-a-key"})
        assert wrong.status == 401
        samples = await scrape(client, {"Authorization": f"Bearer {OPS_KEY}"})
    assert ("switchboard_inbox_depth", (("role", "all"), ("status", "pending"))) in samples


async def test_two_apps_in_one_process_count_apart(
    make_settings: MakeSettings, llm: FakeOpenAI
) -> None:
    """Each app has a registry of its own: nothing shared, nothing registered twice."""
    llm.script(Reply("One."))
    async with serving(make_settings()) as one, serving(
        make_settings(data_dir=make_settings().data_dir / "other")
    ) as other:
        assert (await one.post("/api/v1/chat", json={"message": "hi"})).status == 200
        await settled(one)
        counted, untouched = await scrape(one), await scrape(other)
    answered = {"role": "all", "channel": "web", "outcome": "answered"}
    assert value(counted, "switchboard_messages_total", **answered) == 1
    assert value(untouched, "switchboard_messages_total", **answered) == 0


def _message(message_id: str) -> InboundMessage:
    return InboundMessage(
        id=message_id,
        conversation=ConversationRef(channel="web", tenant="local", conversation=message_id),
        sender=Sender(id="web:local:ada", name="ada"),
        text="is anyone there?",
        sent_at=datetime.now(UTC),
        is_direct=True,
    )
