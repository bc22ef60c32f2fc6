"""/slack/events against generated bodies and headers (hypothesis), signed and unsigned:
never a 5xx, never a traceback, and the app answers a real mention after each test."""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlencode

import pytest
from aiohttp.test_utils import TestClient
from hypothesis import given
from hypothesis import strategies as st

from tests.e2e.slack.conftest import SECRET, fixture, mention, post_event, settled
from tests.fuzzing import (
    FUZZ,
    content_types,
    header_text,
    json_objects,
    json_values,
    mutated,
    no_traceback,
    raw_bodies,
)

FORM = "application/x-www-form-urlencoded"
EVENT_FIELDS = [("event", name) for name in (
    "type", "subtype", "channel", "channel_type", "ts", "thread_ts", "user", "text", "files",
    "bot_id", "team",
)]


def _feedback_click() -> dict[str, Any]:
    body = copy.deepcopy(fixture("bolt_block_actions_payload.json"))
    body["actions"][0].update(action_id="feedback", value="up:1")
    return body


def _form(payload: Any) -> str:
    return urlencode({"payload": json.dumps(payload)})


signed_bodies = st.one_of(
    mutated(mention("fuzz me"), *EVENT_FIELDS).map(lambda b: (json.dumps(b), "application/json")),
    mutated(_feedback_click(), ("user", "id"), ("message",), ("container",), ("actions",))
    .map(lambda b: (_form(b), FORM)),
    mutated(fixture("bolt_view_submission_payload.json"), ("view", "state"),
            ("view", "callback_id"), ("view", "private_metadata"), ("user", "id"))
    .map(lambda b: (_form(b), FORM)),
    st.dictionaries(st.sampled_from(["command", "text", "user_id", "channel_id", "trigger_id",
                                     "team_id", "payload"]), header_text, max_size=5)
    .map(lambda fields: (urlencode(fields), FORM)),
    st.tuples(json_values.map(json.dumps), content_types),
)


def sign_bytes(raw: bytes, timestamp: str) -> str:
    digest = hmac.new(SECRET.encode(), b"v0:" + timestamp.encode() + b":" + raw, hashlib.sha256)
    return f"v0={digest.hexdigest()}"


@pytest.fixture
async def fuzzed(
    app: TestClient[Any, Any], caplog: pytest.LogCaptureFixture
) -> AsyncIterator[TestClient[Any, Any]]:
    """The app, which answers a real mention after the test's examples, and whose worker
    answered what they let in without a traceback."""
    yield app
    response = await post_event(app, mention("after the fuzz", ts="1700000000.000001",
                                             event_id="EvAfterFuzz"))
    assert response.status == 200
    await settled(app)
    no_traceback(caplog)


@FUZZ
@given(body=st.one_of(raw_bodies, json_objects.map(lambda o: json.dumps(o).encode())),
       content_type=content_types, timestamp=header_text, signature=header_text)
async def test_unsigned_requests_are_refused_without_a_5xx(
    fuzzed: TestClient[Any, Any], caplog: pytest.LogCaptureFixture, body: bytes,
    content_type: str, timestamp: str, signature: str,
) -> None:
    caplog.clear()  # each example's own lines
    response = await fuzzed.post("/slack/events", data=body, headers={
        "Content-Type": content_type, "X-Slack-Request-Timestamp": timestamp,
        "X-Slack-Signature": signature})

    assert response.status in (400, 401)
    no_traceback(caplog)


@FUZZ
@given(body=signed_bodies)
async def test_signed_requests_of_any_shape_never_get_a_5xx(
    fuzzed: TestClient[Any, Any], caplog: pytest.LogCaptureFixture, body: tuple[str, str],
) -> None:
    caplog.clear()
    text, content_type = body
    response = await post_event(fuzzed, text, content_type=content_type)

    assert response.status < 500, await response.text()
    no_traceback(caplog)


@FUZZ
@given(raw=raw_bodies, content_type=content_types)
async def test_signed_raw_bytes_never_get_a_5xx(
    fuzzed: TestClient[Any, Any], caplog: pytest.LogCaptureFixture, raw: bytes, content_type: str,
) -> None:
    caplog.clear()
    timestamp = str(int(time.time()))
    response = await fuzzed.post("/slack/events", data=raw, headers={
        "Content-Type": content_type, "X-Slack-Request-Timestamp": timestamp,
        "X-Slack-Signature": sign_bytes(raw, timestamp)})

    assert response.status < 500
    no_traceback(caplog)

