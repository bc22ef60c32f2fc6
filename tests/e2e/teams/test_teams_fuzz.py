"""/api/messages against generated bodies and headers (hypothesis), with a valid channel
token: never a 5xx (but 501 for an invoke the bot does not serve, Bot Framework's answer),
never a traceback, and the app answers a real message after each test."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from hypothesis import given
from hypothesis import strategies as st

from tests.e2e.teams.conftest import APP_ID, activity, personal, post_activity, settled
from tests.fakes.bot_framework import ChannelIdentity, FakeConnector
from tests.fakes.openai_server import FakeOpenAI, Reply
from tests.fuzzing import (
    FUZZ,
    content_types,
    header_text,
    json_values,
    mutated,
    no_traceback,
    raw_bodies,
)

MESSAGE_FIELDS = [
    ("from", "id"), ("from", "aadObjectId"), ("from", "role"), ("conversation", "id"),
    ("conversation", "conversationType"), ("conversation", "tenantId"), ("channelData", "tenant"),
    ("entities",), ("attachments",), ("value",), ("text",), ("recipient", "id"),
]


@pytest.fixture
async def fuzzed(
    app: TestClient[Any, Any], identity: ChannelIdentity, connector: FakeConnector,
    llm: FakeOpenAI, caplog: pytest.LogCaptureFixture,
) -> AsyncIterator[tuple[TestClient[Any, Any], str, FakeConnector]]:
    """The app and a valid token; afterwards the app answers a real message, and its
    worker answered what the examples let in without a traceback."""
    token = identity.token(app_id=APP_ID, service_url=connector.base_url)
    yield app, token, connector
    await settled(app)
    llm.script(Reply("Still here."))
    response = await post_activity(app, identity, personal(connector, "still there?",
                                                           id="after-the-fuzz"))
    assert response.status == 200
    await connector.wait_for_text("Still here.")
    no_traceback(caplog)


def bodies(connector: FakeConnector) -> st.SearchStrategy[str]:
    message = personal(connector, "fuzz me")
    invoke = activity(
        "msdocs_invoke_message_submitAction_feedback.json", connector, type="invoke",
        id="f:fuzz", channelId="msteams", conversation=message["conversation"],
        **{"from": message["from"]},
    )
    return st.one_of(
        mutated(message, *MESSAGE_FIELDS),
        mutated(invoke, ("value", "actionName"), ("value", "actionValue"), ("name",),
                ("replyToId",)),
        json_values,
    ).map(json.dumps)


def allowed(status: int, sent: str) -> bool:
    try:
        kind = json.loads(sent).get("type")
    except AttributeError:
        kind = None
    return status < 500 or (status == 501 and kind == "invoke")


@FUZZ
@given(data=st.data())
async def test_activities_of_any_shape_never_get_a_5xx(
    fuzzed: tuple[TestClient[Any, Any], str, FakeConnector], identity: ChannelIdentity,
    caplog: pytest.LogCaptureFixture, data: st.DataObject,
) -> None:
    app, token, connector = fuzzed
    caplog.clear()  # each example's own lines
    body = data.draw(bodies(connector))

    response = await post_activity(app, identity, body, token=token)

    assert allowed(response.status, body), (response.status, await response.text())
    no_traceback(caplog)


@FUZZ
@given(raw=raw_bodies, content_type=content_types, authorization=header_text)
async def test_raw_bytes_and_headers_never_get_a_5xx(
    fuzzed: tuple[TestClient[Any, Any], str, FakeConnector], caplog: pytest.LogCaptureFixture,
    raw: bytes, content_type: str, authorization: str,
) -> None:
    app, token, _ = fuzzed
    caplog.clear()
    for auth in (f"Bearer {token}", authorization):
        response = await app.post("/api/messages", data=raw, headers={
            "Content-Type": content_type, "Authorization": auth})

        assert response.status < 500
    no_traceback(caplog)
