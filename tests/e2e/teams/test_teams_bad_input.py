"""Authenticated Teams activities whose JSON is hostile or whose fields are missing or of
the wrong type: a 4xx, or 200 and ignored, with one log line and never a traceback;
nothing is stored and the app keeps answering."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from tests.e2e.teams.conftest import APP_ID, activity, personal, post_activity, settled
from tests.e2e.teams.test_teams_requests import stored
from tests.fakes.bot_framework import ChannelIdentity, FakeConnector
from tests.fakes.openai_server import FakeOpenAI, Reply
from tests.fuzzing import no_traceback

MISSING = object()



async def still_answers(
    app: TestClient[Any, Any], identity: ChannelIdentity, connector: FakeConnector,
    llm: FakeOpenAI, *, stored_before: int,
) -> None:
    llm.script(Reply("Still here."))
    response = await post_activity(app, identity, personal(connector, "still there?",
                                                           id="after-the-junk"))
    assert response.status == 200
    await connector.wait_for_text("Still here.")
    await settled(app)
    assert await stored(app) == stored_before + 1


async def test_deeply_nested_json_is_refused_with_400(
    app: TestClient[Any, Any], identity: ChannelIdentity, connector: FakeConnector,
    llm: FakeOpenAI, caplog: pytest.LogCaptureFixture,
) -> None:
    token = identity.token(app_id=APP_ID, service_url=connector.base_url)
    for raw in (
        "[" * 100_000 + "]" * 100_000,
        json.dumps(personal(connector, "hi"))[:-1] + ', "value": '
        + '{"a": ' * 50_000 + "1" + "}" * 50_000 + "}",
    ):
        response = await post_activity(app, identity, raw, token=token)
        assert response.status == 400

    no_traceback(caplog)
    await still_answers(app, identity, connector, llm, stored_before=0)


def message_with(connector: FakeConnector, **fields: Any) -> dict[str, Any]:
    body = personal(connector, "hello")
    for name, value in fields.items():
        if value is MISSING:
            body.pop(name, None)
        else:
            body[name] = value
    return body


JUNK_MESSAGES: dict[str, dict[str, Any]] = {
    "no from": {"from": MISSING},
    "from a string": {"from": "29:someone"},
    "from id a number": {"from": {"id": 5, "aadObjectId": 6}},
    "no conversation": {"conversation": MISSING},
    "conversation a string": {"conversation": "a:1"},
    "conversation without an id": {"conversation": {"conversationType": "personal"}},
    "conversation id a number": {"conversation": {"id": 12, "conversationType": "personal"}},
    "conversation id with a NUL": {"conversation": {"id": "a:1\x00", "conversationType": "personal"}},
    "from id with a NUL": {"from": {"id": "29:x\x00", "aadObjectId": "6d41\x00"}},
    "conversation type a list": {"conversation": {"id": "a:1", "conversationType": ["x"]}},
    "text a number": {"text": 12345},
    "text a list": {"text": ["hi"]},
    "no id": {"id": MISSING},
    "id a number": {"id": 17},
    "attachments a string": {"attachments": "file.pdf"},
    "attachments of numbers": {"attachments": [1, 2]},
    "attachment fields mistyped": {"attachments": [{"contentType": 5, "content": "x"}]},
    "entities junk": {"entities": "mention"},
    "entities of strings": {"entities": ["mention"]},
    "mention without mentioned": {"entities": [{"type": "mention", "mentioned": "bot"}]},
    "channelData a string": {"channelData": "tenant"},
    "tenant a number": {"channelData": {"tenant": {"id": 1}}},
    "recipient a list": {"recipient": ["bot"]},
    "value junk": {"value": ["action"]},
    "timestamp junk": {"timestamp": "yesterday"},
    "timestamp a number": {"timestamp": 1571691217},
    "type a number": {"type": 7},
    "no serviceUrl": {"serviceUrl": MISSING},
}


@pytest.mark.parametrize("change", JUNK_MESSAGES.values(), ids=list(JUNK_MESSAGES))
async def test_a_message_with_junk_fields_is_refused_or_ignored(
    app: TestClient[Any, Any], identity: ChannelIdentity, connector: FakeConnector,
    llm: FakeOpenAI, caplog: pytest.LogCaptureFixture, change: dict[str, Any],
) -> None:
    body = message_with(connector, **change)
    token = identity.token(app_id=APP_ID, service_url=connector.base_url)

    response = await post_activity(app, identity, body, token=token)

    assert response.status in (200, 400)
    no_traceback(caplog)
    await settled(app)
    before = await stored(app)
    await still_answers(app, identity, connector, llm, stored_before=before)


def invoke_with(connector: FakeConnector, value: Any, **fields: Any) -> dict[str, Any]:
    body = activity(
        "msdocs_invoke_message_submitAction_feedback.json", connector,
        type="invoke", id="f:junk", channelId="msteams", replyToId="1:not-ours",
        conversation=personal(connector, "")["conversation"],
        **{"from": personal(connector, "")["from"]},
    )
    body.update(fields)
    if value is not MISSING:
        body["value"] = value
    else:
        body.pop("value", None)
    return body


JUNK_INVOKES: dict[str, Any] = {
    "no value": (MISSING, {}),
    "value a string": ("feedback", {}),
    "value a list": ([1], {}),
    "actionValue a string": ({"actionName": "feedback", "actionValue": "like"}, {}),
    "reaction a list": ({"actionName": "feedback", "actionValue": {"reaction": ["like"]}}, {}),
    "feedback a number": ({"actionName": "feedback",
                           "actionValue": {"reaction": "like", "feedback": 5}}, {}),
    "replyToId a number": ({"actionName": "feedback",
                            "actionValue": {"reaction": "like"}}, {"replyToId": 5}),
    "name a number": ({"actionName": "feedback"}, {"name": 5}),
}


@pytest.mark.parametrize("case", JUNK_INVOKES.values(), ids=list(JUNK_INVOKES))
async def test_an_invoke_with_junk_fields_is_refused_or_ignored(
    app: TestClient[Any, Any], identity: ChannelIdentity, connector: FakeConnector,
    llm: FakeOpenAI, caplog: pytest.LogCaptureFixture, case: tuple[Any, dict[str, Any]],
) -> None:
    value, fields = case
    body = invoke_with(connector, value, **fields)

    response = await post_activity(app, identity, body)

    assert response.status < 500
    no_traceback(caplog)
    await still_answers(app, identity, connector, llm, stored_before=0)


async def test_a_card_action_the_bot_does_not_serve_gets_501_whatever_its_value(
    app: TestClient[Any, Any], identity: ChannelIdentity, connector: FakeConnector,
    llm: FakeOpenAI, caplog: pytest.LogCaptureFixture,
) -> None:
    # botbuilder's own handler answered a malformed value with a 500.
    body = invoke_with(connector, ["x"], name="adaptiveCard/action")

    response = await post_activity(app, identity, body)

    assert response.status == 501
    no_traceback(caplog)
    await still_answers(app, identity, connector, llm, stored_before=0)
