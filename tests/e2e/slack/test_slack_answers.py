"""Mention, DM and thread follow-up: answered once, in the thread, streamed, with sources."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from adapters.slack.translate import thread_ref
from core.knowledge import Passage
from tests.e2e.conftest import services, serving
from tests.e2e.slack.conftest import (
    ASKER,
    TEAM,
    SlackSettings,
    as_message,
    fixture,
    mention,
    post_event,
    settled,
)
from tests.fakes.knowledge import Document, InMemoryRetriever
from tests.fakes.openai_server import FakeOpenAI, Hang, Reply
from tests.fakes.slack_api import FakeSlack

VPN = Passage(id="kb-1", title="Reset your VPN password", text="Open the portal and click Reset.",
              url="https://wiki.example.com/vpn")


@pytest.fixture
async def app_with_kb(slack_settings: SlackSettings) -> AsyncIterator[TestClient[Any, Any]]:
    retriever = InMemoryRetriever([Document(passage=VPN)])
    async with serving(slack_settings(), retriever=retriever) as client:
        yield client


async def test_mention_is_answered_in_its_thread_streamed_with_sources_and_feedback(
    app_with_kb: TestClient[Any, Any], slack: FakeSlack, llm: FakeOpenAI
) -> None:
    llm.script(Reply("Open the portal and click **Reset** [1]."))
    body = mention("how do I reset my VPN password?", ts="1700000001.000100")

    response = await post_event(app_with_kb, body)

    assert response.status == 200
    (stop,) = await slack.wait_for("chat.stopStream")
    (reply,) = slack.thread("C111", "1700000001.000100")
    assert reply.text == "Open the portal and click **Reset** [1]."
    assert reply.state == "stopped"
    start = slack.calls_to("chat.startStream")[0].body
    assert start["thread_ts"] == "1700000001.000100"
    assert (start["recipient_user_id"], start["recipient_team_id"]) == (ASKER, TEAM)
    sources, feedback = stop.body["blocks"]
    assert "<https://wiki.example.com/vpn|Reset your VPN password>" in str(sources)
    assert feedback["elements"][0]["type"] == "feedback_buttons"
    # The model saw the question without the mention, and who asked.
    prompt = llm.requests[0].json["messages"]
    assert prompt[-1]["content"] == "how do I reset my VPN password?"
    assert "Ada Lovelace" in prompt[0]["content"]


async def test_status_names_what_the_assistant_is_doing_before_the_answer(
    app: TestClient[Any, Any], slack: FakeSlack, llm: FakeOpenAI
) -> None:
    llm.script(Hang(seconds=1.0))  # a model that takes a moment to start answering
    await post_event(app, mention("hello"))

    await slack.wait_for("chat.stopStream")
    status = slack.calls_to("assistant.threads.setStatus")[0]
    assert status.body["loading_messages"] == ["Thinking…"]
    assert status.at < slack.calls_to("chat.startStream")[0].at


async def test_direct_message_is_answered_in_its_thread(
    app: TestClient[Any, Any], slack: FakeSlack, llm: FakeOpenAI
) -> None:
    body = fixture("bolt_message_im_top_level_dm.json")

    assert (await post_event(app, body)).status == 200

    await slack.wait_for("chat.stopStream")
    (reply,) = slack.thread("D111", "1726133700.887259")
    assert reply.text == "echo: A top-level DM, not in a thread"
    conversation = await services(app).conversations.find(
        thread_ref(TEAM, "D111", "1726133700.887259")
    )
    assert conversation is not None and conversation.owner == "slack:T111:W222"


async def test_follow_up_in_an_answered_thread_needs_no_mention(
    app: TestClient[Any, Any], slack: FakeSlack
) -> None:
    follow_up = fixture("bolt_message_channels_thread_reply.json")
    root = follow_up["event"]["thread_ts"]
    await post_event(app, mention("when was Slack released?", ts=root, event_id="Ev000"))
    await slack.wait_for("chat.stopStream")

    assert (await post_event(app, follow_up)).status == 200

    await slack.wait_for("chat.stopStream", count=2)
    texts = [m.text for m in slack.thread("C111", root)]
    assert texts == ["echo: when was Slack released?", "echo: When Slack was released?"]


async def test_thread_the_bot_never_answered_is_left_alone(
    app: TestClient[Any, Any], slack: FakeSlack, llm: FakeOpenAI
) -> None:
    assert (await post_event(app, fixture("bolt_message_channels_thread_reply.json"))).status == 200

    await settled(app)
    assert llm.requests == []
    assert slack.calls_to("chat.startStream") == []


async def test_a_retried_event_is_answered_once(
    app: TestClient[Any, Any], slack: FakeSlack, llm: FakeOpenAI
) -> None:
    body = mention("hi")
    first = await post_event(app, body)
    await slack.wait_for("chat.stopStream")

    again = await post_event(
        app, body, headers={"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"}
    )

    assert (first.status, again.status) == (200, 200)
    await settled(app)
    assert len(slack.calls_to("chat.startStream")) == 1
    assert len(llm.requests) == 1


async def test_mention_delivered_as_app_mention_and_message_is_answered_once(
    app: TestClient[Any, Any], slack: FakeSlack, llm: FakeOpenAI
) -> None:
    body = mention("hi there")

    responses = [
        await post_event(app, body),
        await post_event(app, as_message(body, event_id="Ev999")),
    ]

    assert [r.status for r in responses] == [200, 200]
    await slack.wait_for("chat.stopStream")
    await settled(app)
    assert len(slack.calls_to("chat.startStream")) == 1
    assert len(llm.requests) == 1


@pytest.mark.parametrize(
    "name", ["bolt_message_bot_message.json", "bolt_message_changed.json"]
)
async def test_other_bots_and_edits_are_ignored(
    app: TestClient[Any, Any], slack: FakeSlack, llm: FakeOpenAI, name: str
) -> None:
    assert (await post_event(app, fixture(name))).status == 200

    await settled(app)
    assert llm.requests == []
    inbox = services(app).inbox
    bot_message = "C111:1610261539.000900"
    assert await inbox.find(channel="slack", tenant=TEAM, message_id=bot_message) is None


async def test_own_messages_are_ignored(
    app: TestClient[Any, Any], slack: FakeSlack, llm: FakeOpenAI
) -> None:
    own = mention("my own answer")
    own["event"].update(type="message", channel_type="channel", user="U111", bot_id="B111")

    assert (await post_event(app, own)).status == 200

    await settled(app)
    assert llm.requests == []

