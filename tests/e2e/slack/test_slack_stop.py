"""Stopping an answer from Slack, end to end: the agent session's stop control or, where
the workspace refuses sessions, the Stop button; a stopped answer ends with the mark, is
stored so, and is never answered again. And the thread's title."""

from __future__ import annotations

import copy
import json
import urllib.parse
from typing import Any

from aiohttp.test_utils import TestClient

from adapters.slack.blocks import STOP_ACTION
from adapters.slack.translate import message_id
from core.replies import STOPPED_MARK
from core.stops import NOT_YOURS
from tests.e2e.conftest import services
from tests.e2e.slack.conftest import ASKER, TEAM, fixture, mention, post_event, settled
from tests.fakes.openai_server import FakeOpenAI, Paced
from tests.fakes.slack_api import FakeSlack, Message

ROOT = "1700000001.000100"
SLOW = Paced(first_token=0.1, tokens=400, rate=40)  # ten seconds of answer, if not stopped


def stop_button(m: Message) -> dict[str, Any] | None:
    """The Stop button the answer's message shows while it is written, if any."""
    found = [e for b in m.shown_blocks if b.get("type") == "actions" for e in b["elements"]
             if e.get("action_id") == STOP_ACTION]
    return found[0] if found else None


def is_button(m: Message) -> bool:
    return stop_button(m) is not None


def ends_stopped(m: Message) -> bool:
    return m.text.endswith(STOPPED_MARK)


def click_stop(button: Message, *, user: str) -> str:
    """The fixture's block_actions click, on the Stop button the answer's message shows."""
    body = copy.deepcopy(fixture("bolt_block_actions_payload.json"))
    element = stop_button(button)
    assert element is not None
    body["user"]["id"] = user
    body["container"].update(message_ts=button.ts, is_ephemeral=False)
    body["message"] = button.to_slack()
    body["actions"][0].update(action_id=STOP_ACTION, block_id="switchboard_stop",
                              value=element["value"])
    return "payload=" + urllib.parse.quote(json.dumps(body))


def session_stopped(channel: str, thread_ts: str, streams: list[str]) -> dict[str, Any]:
    """The fixture's event_callback envelope carrying agent_session_stopped, shaped as
    https://docs.slack.dev/reference/events/agent_session_stopped/ shows it."""
    body = copy.deepcopy(fixture("sdk_socketmode_envelope_events_api_app_mention.json")["payload"])
    body["event"] = {"type": "agent_session_stopped", "channel": channel,
                     "thread_ts": thread_ts, "user": ASKER, "streaming_message_ts": streams,
                     "event_ts": "1700000009.000100"}
    body["event_id"] = "EvStop1"
    return body


async def test_the_session_is_processing_while_answering_then_active(
    app: TestClient[Any, Any], slack: FakeSlack
) -> None:
    await post_event(app, mention("hi", ts=ROOT))

    await slack.wait_for("chat.stopStream")
    await settled(app)
    statuses = [c.body["status"] for c in slack.calls_to("agents.sessions.setStatus")]
    assert statuses[0] == "processing"
    assert slack.sessions[("C111", ROOT)] == "active"
    assert [m.text for m in slack.thread("C111", ROOT)] == ["echo: hi"]  # no Stop button


async def test_the_thread_is_named_after_the_first_question(
    app: TestClient[Any, Any], slack: FakeSlack
) -> None:
    await post_event(app, mention("how do I reset my VPN password?", ts=ROOT))

    await slack.wait_for("agents.sessions.rename")
    assert slack.titles[("C111", ROOT)]


async def test_the_asker_stops_the_answer_with_the_stop_button(
    app: TestClient[Any, Any], slack: FakeSlack, llm: FakeOpenAI
) -> None:
    slack.refuse_agent_sessions("not_allowed")
    llm.script(SLOW)
    body = mention("tell me everything", ts=ROOT)
    await post_event(app, body)
    button = await slack.wait_for_text("C111", ROOT, is_button)
    await slack.wait_for("chat.startStream")

    assert await click(app, click_stop(button, user=ASKER)) == 200

    reply = await slack.wait_for_text("C111", ROOT, ends_stopped, timeout=5)
    await settled(app)
    # One message, the answer's, and its Stop button is gone.
    (final,) = slack.thread("C111", ROOT)
    assert final.ts == reply.ts == button.ts and final.text.endswith(STOPPED_MARK)
    assert not is_button(final)
    assert "feedback_buttons" not in str(final.shown_blocks)
    inbox = services(app).inbox
    item = await inbox.find(channel="slack", tenant=TEAM, message_id=message_id("C111", ROOT))
    assert item is not None and item.status == "done"
    answer = await inbox.answer_of(item.id)
    assert answer is not None and answer.content.endswith(STOPPED_MARK)
    # Slack's retry of the question is not answered again (the model was asked for the
    # answer and, beside it, the title: nothing more).
    asked = len(llm.requests)
    await post_event(app, body, headers={"X-Slack-Retry-Num": "1"})
    await settled(app)
    assert len(llm.requests) == asked
    assert len(slack.calls_to("chat.startStream")) == 1


async def test_someone_else_cannot_stop_it(
    app: TestClient[Any, Any], slack: FakeSlack, llm: FakeOpenAI
) -> None:
    slack.refuse_agent_sessions("not_allowed")
    llm.script(Paced(first_token=0.1, tokens=40, rate=40))
    await post_event(app, mention("tell me everything", ts=ROOT))
    button = await slack.wait_for_text("C111", ROOT, is_button)

    assert await click(app, click_stop(button, user="W222")) == 200

    (refusal,) = slack.ephemerals
    assert (refusal["user"], refusal["text"]) == ("W222", NOT_YOURS)
    await slack.wait_for("chat.stopStream", timeout=5)
    await settled(app)
    (reply,) = slack.thread("C111", ROOT)
    assert not reply.text.endswith(STOPPED_MARK)


async def test_the_session_stop_control_stops_the_answer(
    app: TestClient[Any, Any], slack: FakeSlack, llm: FakeOpenAI
) -> None:
    llm.script(SLOW)
    await post_event(app, mention("tell me everything", ts=ROOT))
    await slack.wait_for("chat.appendStream")

    streams = slack.press_session_stop("C111", ROOT)
    assert (await post_event(app, session_stopped("C111", ROOT, streams))).status == 200

    reply = await slack.wait_for_text("C111", ROOT, ends_stopped, timeout=5)
    await settled(app)
    assert [m.ts for m in slack.thread("C111", ROOT)] == [reply.ts] == streams
    assert slack.sessions[("C111", ROOT)] == "active"


async def click(app: TestClient[Any, Any], form: str) -> int:
    response = await post_event(app, form, content_type="application/x-www-form-urlencoded")
    return response.status
