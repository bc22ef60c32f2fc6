"""Slack end to end: the real server with its Bolt app, signed requests built from the
fixtures in tests/fixtures/slack, a fake Slack Web API and the fake OpenAI server."""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient

from bots.settings import Settings
from tests.e2e.conftest import MakeSettings, serving
from tests.e2e.conftest import settled as settled  # where the channel tests import it
from tests.fakes.slack_api import FakeSlack

FIXTURES = Path(__file__).parents[2] / "fixtures" / "slack"
SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
BOT_TOKEN = "xoxb-test-0123456789"
TEAM, BOT_USER, BOT_ID = "T111", "U111", "B111"
ASKER = "U222"


def fixture(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / name).read_text())
    return data


def mention(text: str, *, ts: str = "1610241741.000200", event_id: str = "Ev111",
            channel: str = "C111", thread_ts: str | None = None) -> dict[str, Any]:
    """The fixture's app_mention event_callback, saying `text` (a copy: fixtures stay as
    they are)."""
    body = copy.deepcopy(fixture("sdk_socketmode_envelope_events_api_app_mention.json")["payload"])
    event = body["event"]
    event.update(text=f"<@{BOT_USER}> {text}", ts=ts, event_ts=ts, channel=channel)
    if thread_ts:
        event["thread_ts"] = thread_ts
    body["event_id"] = event_id
    return body


def as_message(body: dict[str, Any], *, event_id: str) -> dict[str, Any]:
    """The same message delivered as `message.channels` (a channel the bot reads)."""
    again = copy.deepcopy(body)
    again["event"]["type"] = "message"
    again["event"]["channel_type"] = "channel"
    again["event_id"] = event_id
    return again


def sign(body: str, *, secret: str = SECRET, timestamp: int | None = None) -> dict[str, str]:
    ts = str(int(time.time()) if timestamp is None else timestamp)
    digest = hmac.new(secret.encode(), f"v0:{ts}:{body}".encode(), hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": f"v0={digest}"}


async def post_event(
    client: TestClient[Any, Any],
    payload: dict[str, Any] | str,
    *,
    headers: dict[str, str] | None = None,
    content_type: str = "application/json",
    **signing: Any,
) -> ClientResponse:
    body = payload if isinstance(payload, str) else json.dumps(payload)
    return await client.post(
        "/slack/events",
        data=body.encode(),
        headers={"Content-Type": content_type, **sign(body, **signing), **(headers or {})},
    )


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    async with FakeSlack(team_id=TEAM, bot_user_id=BOT_USER, bot_id=BOT_ID) as fake:
        fake.add_user(ASKER, name="ada", real_name="Ada Lovelace", email="ada@example.com",
                      tz="Europe/London")
        fake.add_user("W222", name="grace", real_name="Grace Hopper", email="grace@example.com")
        yield fake


SlackSettings = Callable[..., Settings]


@pytest.fixture
def slack_settings(make_settings: MakeSettings, slack: FakeSlack) -> SlackSettings:
    def make(**overrides: Any) -> Settings:
        values = {
            "slack_bot_token": BOT_TOKEN,
            "slack_signing_secret": SECRET,
            "slack_api_url": slack.base_url,
            **overrides,
        }
        return make_settings(**values)

    return make


@pytest.fixture
async def app(slack_settings: SlackSettings) -> AsyncIterator[TestClient[Any, Any]]:
    async with serving(slack_settings()) as client:
        yield client
