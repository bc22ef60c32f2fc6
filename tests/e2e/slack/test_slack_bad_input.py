"""Signed Slack requests whose fields are missing or of the wrong type: acknowledged with
200 (a 4xx or 5xx would have Slack retry the same junk) and ignored with one log line,
never a traceback; nothing is stored and the app keeps answering."""

from __future__ import annotations

import copy
import json
from typing import Any
from urllib.parse import urlencode

import pytest
from aiohttp.test_utils import TestClient

from tests.e2e.slack.conftest import ASKER, fixture, mention, post_event, settled
from tests.e2e.slack.test_slack_requests import inbox_size
from tests.e2e.slack.test_slack_tickets import command_body, submission
from tests.fakes.openai_server import FakeOpenAI
from tests.fuzzing import no_traceback

FORM = "application/x-www-form-urlencoded"
MISSING = object()



async def still_answers(app: TestClient[Any, Any], llm: FakeOpenAI) -> None:
    """A good mention after the junk is still recorded and answered."""
    response = await post_event(app, mention("still there?", ts="1610241799.000100",
                                             event_id="EvAfter"))
    assert response.status == 200
    await settled(app)
    assert len(llm.requests) == 1


def event_with(**fields: Any) -> dict[str, Any]:
    body = mention("hello")
    for name, value in fields.items():
        if value is MISSING:
            body["event"].pop(name, None)
        else:
            body["event"][name] = value
    return body


JUNK_EVENTS: dict[str, dict[str, Any]] = {
    "no channel": event_with(channel=MISSING),
    "channel a number": event_with(channel=42),
    "channel an object": event_with(channel={"id": "C111"}),
    "channel with a NUL": event_with(channel="C1\x0011"),
    "user with a NUL": event_with(user="U2\x0022"),
    "no ts": event_with(ts=MISSING),
    "ts not a number": event_with(ts="yesterday"),
    "ts a list": event_with(ts=["1610241741.000200"]),
    "ts out of range": event_with(ts="1e400"),
    "files not a list": event_with(files="report.pdf"),
    "files of numbers": event_with(files=[1, 2]),
    "file fields mistyped": event_with(files=[{"name": 5, "size": "big", "mimetype": []}]),
    "text a number": event_with(text=12345),
    "text an object": event_with(text={"t": "hi"}),
    "no user": event_with(user=MISSING),
    "user a number": event_with(user=7),
    "user an object": event_with(user={"id": ASKER}),
    "thread_ts a number": event_with(thread_ts=1610241741.0002),
    "thread_ts an object": event_with(thread_ts={"ts": "1"}),
    "subtype a list": event_with(subtype=["file_share"]),
    "channel_type a list": event_with(channel_type=["im"]),
    "event a string": {**mention("x"), "event": "app_mention"},
    "event a list": {**mention("x"), "event": [1]},
    "event_id an object": {**mention("x"), "event_id": {"id": 1}},
    "team_id a number": {**mention("x"), "team_id": 111},
    "authorizations junk": {**mention("x"), "authorizations": "all"},
    "a JSON list": [mention("x")],  # type: ignore[dict-item]
}


@pytest.mark.parametrize("body", JUNK_EVENTS.values(), ids=list(JUNK_EVENTS))
async def test_a_signed_event_with_junk_fields_is_acknowledged_and_ignored(
    app: TestClient[Any, Any], caplog: pytest.LogCaptureFixture, llm: FakeOpenAI,
    body: dict[str, Any],
) -> None:
    response = await post_event(app, body)

    assert response.status in (200, 400)
    assert await inbox_size(app) == 0
    no_traceback(caplog)
    await still_answers(app, llm)


def interaction(payload: Any) -> str:
    return urlencode({"payload": payload if isinstance(payload, str) else json.dumps(payload)})


def feedback_click(**changes: Any) -> dict[str, Any]:
    body = copy.deepcopy(fixture("bolt_block_actions_payload.json"))
    body["actions"][0].update(action_id="feedback", value="up:1")
    for name, value in changes.items():
        if value is MISSING:
            body.pop(name, None)
        else:
            body[name] = value
    return body


def junk_submission(**view_changes: Any) -> dict[str, Any]:
    view = {"callback_id": "ticket_form", "blocks": [], "private_metadata": "{}"}
    body = submission(view, title="Printer is broken")
    body["view"].update(view_changes)
    return body


JUNK_INTERACTIONS: dict[str, Any] = {
    "view_submission without a view": {"type": "view_submission", "user": {"id": ASKER}},
    "view_submission view a string": {"type": "view_submission", "view": "x"},
    "view_submission without a user": {
        k: v for k, v in junk_submission().items() if k != "user"},
    "view_submission user a string": {**junk_submission(), "user": ASKER},
    "view_submission state a list": junk_submission(state=[1]),
    "view_submission values junk": junk_submission(state={"values": {"title": "x"}}),
    "view_submission metadata junk": junk_submission(private_metadata=["c"]),
    "view_submission title a number": junk_submission(state={"values": {
        "title": {"title": {"value": 7}}, "priority": {"priority": {
            "selected_option": {"value": "high"}}}}}),
    "feedback without a user": feedback_click(user=MISSING),
    "feedback user a string": feedback_click(user=ASKER),
    "feedback message a string": feedback_click(message="hi", container=MISSING),
    "feedback channel a list": feedback_click(channel=["C111"]),
    "feedback actions empty": feedback_click(actions=[]),
    "feedback action value a number": {
        **feedback_click(), "actions": [{"action_id": "feedback", "value": 5}]},
    "feedback action a string": {**feedback_click(), "actions": ["feedback"]},
    "feedback on a message without ts": feedback_click(
        message={"thread_ts": {"x": 1}, "ts": 5}),
    "ticket button without a user": {
        "type": "block_actions", "actions": [{"action_id": "ticket_new", "value": ""}]},
    "ticket list button user junk": {
        "type": "block_actions", "user": "U1",
        "actions": [{"action_id": "ticket_list", "value": ""}]},
    "shortcut without a user": {"type": "message_action",
                                "callback_id": "create_ticket_from_message"},
    "shortcut message junk": {"type": "message_action", "user": {"id": ASKER},
                              "callback_id": "create_ticket_from_message", "message": "x",
                              "channel": "C1"},
    "view_closed view a list": {"type": "view_closed", "user": {"id": ASKER}, "view": [1]},
    "view_closed view null": {"type": "view_closed", "user": {"id": ASKER}, "view": None},
    "unknown type, actions of numbers": {"type": "x", "actions": [1]},
    "payload a list": [1, 2],
    "payload a string": '"block_actions"',
    "payload type a number": {"type": 5},
}


@pytest.mark.parametrize("payload", JUNK_INTERACTIONS.values(), ids=list(JUNK_INTERACTIONS))
async def test_a_signed_interaction_with_junk_fields_is_acknowledged_and_ignored(
    app: TestClient[Any, Any], caplog: pytest.LogCaptureFixture, llm: FakeOpenAI, payload: Any,
) -> None:
    response = await post_event(app, interaction(payload), content_type=FORM)

    assert response.status in (200, 400)
    no_traceback(caplog)
    await still_answers(app, llm)


ODD_COMMANDS: dict[str, str] = {
    "ticket without a user": urlencode({"command": "/ticket", "text": "list"}),
    "ticket without a channel": command_body("list").replace("channel_id=C111", ""),
    "ticket with a NUL": command_body("new printer\x00 broken"),
    "ticket with a lone surrogate": command_body("new broken").replace(
        "broken", "%ED%A0%80"),
    "switchboard with nothing else": urlencode({"command": "/switchboard"}),
    "a command nobody registered": urlencode({"command": "/other", "user_id": ASKER}),
    "no command": urlencode({"text": "hi", "user_id": ASKER}),
    "repeated fields": command_body("list") + "&user_id=U999&command=%2Fswitchboard",
}


@pytest.mark.parametrize("form", ODD_COMMANDS.values(), ids=list(ODD_COMMANDS))
async def test_a_signed_slash_command_with_odd_fields_is_answered_without_a_traceback(
    app: TestClient[Any, Any], caplog: pytest.LogCaptureFixture, llm: FakeOpenAI, form: str,
) -> None:
    response = await post_event(app, form, content_type=FORM)

    assert response.status in (200, 400, 404)
    no_traceback(caplog)
    await still_answers(app, llm)
