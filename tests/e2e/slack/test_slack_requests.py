"""What reaches /slack/events: only signed, fresh requests; bad input changes nothing."""

from __future__ import annotations

import logging
import time
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import text

from tests.e2e.conftest import services
from tests.e2e.slack.conftest import FIXTURES, fixture, mention, post_event, sign
from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.slack_api import FakeSlack


async def inbox_size(app: TestClient[Any, Any]) -> int:
    async with services(app).stores.engine.connect() as conn:
        return int((await conn.execute(text("SELECT count(*) FROM inbox"))).scalar_one())


async def test_url_verification_echoes_the_challenge(app: TestClient[Any, Any]) -> None:
    body = fixture("bolt_url_verification.json")

    response = await post_event(app, body)

    assert response.status == 200
    assert (await response.json())["challenge"] == body["challenge"]


async def test_a_forged_signature_is_refused_and_nothing_is_stored(
    app: TestClient[Any, Any], llm: FakeOpenAI
) -> None:
    response = await post_event(app, mention("hi"), secret="not-the-signing-secret")

    assert response.status == 401
    assert await inbox_size(app) == 0
    assert llm.requests == []


async def test_a_request_signed_six_minutes_ago_is_refused(app: TestClient[Any, Any]) -> None:
    response = await post_event(app, mention("hi"), timestamp=int(time.time()) - 360)

    assert response.status == 401
    assert await inbox_size(app) == 0


async def test_an_unsigned_request_is_refused(app: TestClient[Any, Any]) -> None:
    response = await app.post("/slack/events", json=mention("hi"))

    assert response.status == 401


@pytest.mark.parametrize("headers", [
    {},
    {"X-Slack-Request-Timestamp": "not-a-number", "X-Slack-Signature": "v0=00"},
    {"X-Slack-Request-Timestamp": "1", "X-Slack-Signature": "v0=00"},
], ids=["unsigned", "timestamp-not-a-number", "forged"])
@pytest.mark.parametrize("body", ["not json", '{"type": ', "payload=%7Bbroken"])
async def test_a_malformed_body_without_a_valid_signature_is_refused_without_a_traceback(
    app: TestClient[Any, Any], caplog: pytest.LogCaptureFixture, headers: dict[str, str],
    body: str,
) -> None:
    response = await app.post("/slack/events", data=body.encode(), headers={
        "Content-Type": "application/json", **headers})

    assert response.status == 401
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    [line] = [r for r in caplog.records if r.name.startswith("adapters.slack")]
    assert line.getMessage().startswith("refused a Slack request without a valid signature")


async def test_a_signed_body_that_cannot_be_parsed_is_refused_with_400(
    app: TestClient[Any, Any], caplog: pytest.LogCaptureFixture,
) -> None:
    response = await post_event(app, '{"type": ')

    assert response.status == 400
    assert await inbox_size(app) == 0
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]


async def test_an_oversized_body_is_refused_with_413(app: TestClient[Any, Any]) -> None:
    body = '{"type": "event_callback", "pad": "' + "x" * 2_000_000 + '"}'

    response = await post_event(app, body)

    assert response.status == 413
    assert await inbox_size(app) == 0


async def test_a_body_that_is_not_utf8_is_refused_with_400(app: TestClient[Any, Any]) -> None:
    raw = b'{"type": "\xff\xfe"}'
    response = await app.post(
        "/slack/events", data=raw,
        headers={"Content-Type": "application/json", **sign(raw.decode("latin-1"))},
    )

    assert response.status == 400


async def test_the_slash_command_answers_privately_with_help(app: TestClient[Any, Any]) -> None:
    form = (FIXTURES / "bolt_slash_command_body.form.txt").read_text().strip().replace(
        "command=%2Fhello-world", "command=%2Fswitchboard"
    )

    response = await post_event(app, form, content_type="application/x-www-form-urlencoded")

    assert response.status == 200
    body = await response.json()
    assert "Mention @Switchboard" in body["text"]
    assert body["response_type"] == "ephemeral"


async def test_the_home_tab_shows_what_the_bot_can_do(
    app: TestClient[Any, Any], slack: FakeSlack
) -> None:
    body = fixture("bolt_app_home_opened_messages_tab.json")
    body["event"]["tab"] = "home"

    assert (await post_event(app, body)).status == 200

    (publish,) = slack.calls_to("views.publish")
    assert publish.body["user_id"] == "W222"
    assert publish.body["view"]["type"] == "home"


async def test_opening_the_messages_tab_suggests_prompts(
    app: TestClient[Any, Any], slack: FakeSlack
) -> None:
    assert (await post_event(app, fixture("bolt_app_home_opened_messages_tab.json"))).status == 200

    (prompts,) = slack.calls_to("assistant.threads.setSuggestedPrompts")
    assert prompts.body["channel_id"] == "D111"
    assert len(prompts.body["prompts"]) == 3

