"""The assistant container: suggested prompts on a new assistant thread, the channel a
person has open beside the assistant remembered in their profile, "summarise this
channel" read as that person, and events the app does not use acknowledged, not 404."""

from __future__ import annotations

import copy
import json
import logging
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from tests.e2e.conftest import services, serving
from tests.e2e.slack.conftest import SlackSettings, fixture, mention, post_event, settled
from tests.fakes.openai_server import CallTools, FakeOpenAI, Reply
from tests.fakes.slack_api import FakeSlack

VIEWER = "slack:T111:W222"  # the person of the bolt-python assistant payloads


async def viewing(app: TestClient[Any, Any], person: str = VIEWER) -> Any:
    profile = await services(app).profiles.get(person)
    return None if profile is None else profile.preferences.get("slack_viewing", "unset")


async def test_a_new_assistant_thread_gets_prompts_and_remembers_the_channel_beside_it(
    app: TestClient[Any, Any], slack: FakeSlack
) -> None:
    response = await post_event(app, fixture("bolt_assistant_thread_started.json"))

    assert response.status == 200
    (call,) = slack.calls_to("assistant.threads.setSuggestedPrompts")
    assert call.body["channel_id"] == "D111"
    assert call.body["thread_ts"] == "1726133698.626339"
    titles = [p["title"] for p in call.body["prompts"]]
    assert titles[-1] == "Summarise this channel" and len(titles) <= 4  # Slack's maximum
    assert await viewing(app) == "C222"

    again = await post_event(app, fixture("bolt_assistant_thread_started.json"),
                             headers={"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "x"})
    assert again.status == 200
    assert len(slack.calls_to("assistant.threads.setSuggestedPrompts")) == 1  # retry dropped


async def test_a_changed_assistant_thread_context_is_remembered_and_the_prompts_follow_it(
    app: TestClient[Any, Any], slack: FakeSlack
) -> None:
    payload = fixture("bolt_assistant_thread_context_changed.json")
    response = await post_event(app, payload)

    assert response.status == 200
    assert await viewing(app) == "C333"
    (prompts,) = slack.calls_to("assistant.threads.setSuggestedPrompts")
    thread = payload["event"]["assistant_thread"]
    assert (prompts.body["channel_id"], prompts.body["thread_ts"]) == (
        thread["channel_id"], thread["thread_ts"])
    assert "Summarise this channel" in str(prompts.body["prompts"])


async def test_app_context_changed_remembers_the_first_channel_and_forgets_on_empty(
    app: TestClient[Any, Any],
) -> None:
    documented = fixture("slack_docs_app_context_changed.json")
    # Slack's example names no user: there is nobody to remember it for.
    assert (await post_event(app, documented)).status == 200
    assert await viewing(app, "slack:T123ABC456:U123ABC456") is None

    # As @slack/types' AppContextChangedEvent has it: with the viewer and a channel.
    seen = copy.deepcopy(documented)
    seen["event"].update(user="U123ABC456", channel="D0123", event_ts="1782770460.000100")
    seen["event_id"] = "Ev123ABC457"
    seen["event"]["context"]["entities"].insert(
        0, {"type": "slack#/types/canvas_id", "value": "F0CANVAS", "team_id": "T123ABC456"})
    assert (await post_event(app, seen)).status == 200
    assert await viewing(app, "slack:T123ABC456:U123ABC456") == "C01234ABDCE"

    empty = copy.deepcopy(seen)
    empty["event"]["context"] = {}
    empty["event_id"] = "Ev123ABC458"
    assert (await post_event(app, empty)).status == 200
    assert await viewing(app, "slack:T123ABC456:U123ABC456") is None  # forgotten


def reaction_added() -> dict[str, Any]:
    """An event the app does not use, in the fixture's event_callback wrapper."""
    body = copy.deepcopy(fixture("bolt_message_im_top_level_dm.json"))
    body["event"] = {"type": "reaction_added", "user": "W222", "reaction": "thumbsup",
                     "item": {"type": "message", "channel": "C111", "ts": "1726133700.887259"},
                     "item_user": "U111", "event_ts": "1726133701.000100"}
    body["event_id"] = "EvReaction"
    return body


async def test_events_and_clicks_nothing_handles_are_acknowledged_not_404(
    app: TestClient[Any, Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    response = await post_event(app, reaction_added())
    assert response.status == 200

    click = fixture("bolt_block_actions_payload.json")
    click["actions"][0]["action_id"] = "nobody_handles_this"
    form = "payload=" + json.dumps(click).replace("%", "%25").replace("&", "%26")
    response = await post_event(app, form, content_type="application/x-www-form-urlencoded")
    assert response.status == 200

    ignored = [r.getMessage() for r in caplog.records if "unhandled Slack request" in r.getMessage()]
    assert any("reaction_added" in m for m in ignored)
    assert any("nobody_handles_this" in m for m in ignored)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


async def test_socket_mode_acknowledges_an_event_nothing_handles(
    slack_settings: SlackSettings, slack: FakeSlack
) -> None:
    settings = slack_settings(slack_app_token="xapp-1-A111-test", slack_signing_secret=None)
    async with serving(settings):
        await slack.socket_connected.wait()
        envelope = fixture("sdk_socketmode_envelope_events_api_app_mention.json")
        envelope["envelope_id"] = "reaction-envelope"
        envelope["payload"] = reaction_added()

        await slack.send_envelope(envelope)

        assert (await slack.wait_ack("reaction-envelope"))["envelope_id"] == "reaction-envelope"


async def test_summarise_this_channel_reads_the_channel_the_person_is_viewing(
    app: TestClient[Any, Any], slack: FakeSlack, llm: FakeOpenAI
) -> None:
    slack.add_channel("C222", name="launch", members=["W222", "U222"], messages=[
        ("U222", "The launch moves to Friday, <@W222> please tell support"),
        ("W222", "Will do, and the blog post goes out Monday"),
    ])
    # Two reads in one round: Slack allows one conversations.history a minute.
    llm.script(
        CallTools(calls=[("read_channel", {}), ("read_channel", {"channel": "C222"})]),
        Reply("The launch moved to Friday; the blog post is on Monday."),
    )
    await post_event(app, fixture("bolt_assistant_thread_started.json"))

    await post_event(app, fixture("bolt_message_im_top_level_dm.json"))
    await slack.wait_for("chat.stopStream")
    await settled(app)

    first, second = llm.requests
    assert "viewing channel C222" in first.json["messages"][0]["content"]
    results = [m["content"] for m in second.json["messages"] if m["role"] == "tool"]
    assert len(results) == 2
    assert "#launch (C222)" in results[0]
    assert "Ada Lovelace: The launch moves to Friday, @Grace Hopper please tell support" in (
        results[0])
    assert results[0].index("launch moves") < results[0].index("blog post")  # oldest first
    (history,) = slack.calls_to("conversations.history")
    assert history.body["channel"] == "C222" and int(history.body["limit"]) <= 15
    assert "blog post is on Monday" in slack.thread("D111", "1726133700.887259")[-1].text


async def test_a_private_channel_the_person_is_not_in_is_not_read(
    app: TestClient[Any, Any], slack: FakeSlack, llm: FakeOpenAI
) -> None:
    slack.add_channel("G0SECRET1", name="board", private=True, members=["U222"],
                      messages=[("U222", "The acquisition closes in May")])
    llm.script(CallTools(calls=[("read_channel", {"channel": "G0SECRET1"})]),
               Reply("I can't read that channel for you."))

    await post_event(app, fixture("bolt_message_im_top_level_dm.json"))
    await slack.wait_for("chat.stopStream")
    await settled(app)

    (result,) = [m["content"] for m in llm.requests[1].json["messages"] if m["role"] == "tool"]
    assert "private and the person is not a member" in result
    assert "acquisition" not in result
    assert not slack.calls_to("conversations.history")
    assert slack.calls_to("conversations.members")


async def test_asked_in_a_channel_only_that_channel_is_read(
    app: TestClient[Any, Any], slack: FakeSlack, llm: FakeOpenAI
) -> None:
    """Everyone in the channel reads the answer: another channel's messages, even one the
    person may read, would reach people who may not."""
    slack.add_channel("C0OTHER01", name="hr-private", members=["W222", "U222"],
                      messages=[("U222", "Salary bands change in May")])
    llm.script(CallTools(calls=[("read_channel", {"channel": "C0OTHER01"})]),
               Reply("I can only read this channel here."))

    await post_event(app, mention("summarise #hr-private"))
    await slack.wait_for("chat.stopStream")
    await settled(app)

    (result,) = [m["content"] for m in llm.requests[1].json["messages"] if m["role"] == "tool"]
    assert "only this channel can be read" in result and "Salary" not in result
    assert not slack.calls_to("conversations.history")
