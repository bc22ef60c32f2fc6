"""Teams answers: in the thread that asked, streamed in 1:1 chats, with sources, the AI
label and the feedback loop; feedback stored with the answer it rates."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from core.knowledge import Passage
from core.messages import ConversationRef
from tests.e2e.conftest import services, serving
from tests.e2e.teams.conftest import (
    ASKER_AAD,
    BOT_ID,
    PERSONAL_AAD,
    TENANT,
    TeamsSettings,
    activity,
    channel_mention,
    personal,
    post_activity,
    settled,
)
from tests.fakes.bot_framework import ChannelIdentity, FakeConnector, FakeLogin
from tests.fakes.knowledge import Document, InMemoryRetriever
from tests.fakes.openai_server import FakeOpenAI, Hang, Reply

VPN = Passage(id="kb-1", title="Reset your VPN password", text="Open the portal and click Reset.",
              url="https://wiki.example.com/vpn")


@pytest.fixture
async def app_with_kb(teams_settings: TeamsSettings) -> AsyncIterator[TestClient[Any, Any]]:
    retriever = InMemoryRetriever([Document(passage=VPN)])
    async with serving(teams_settings(), retriever=retriever) as client:
        yield client


def ai_entity(message_activity: dict[str, Any]) -> dict[str, Any]:
    [entity] = [e for e in message_activity.get("entities") or ()
                if e.get("type") == "https://schema.org/Message"]
    return dict(entity)


async def test_channel_mention_is_answered_in_its_thread_without_the_mention(
    app_with_kb: TestClient[Any, Any], identity: ChannelIdentity, connector: FakeConnector,
    llm: FakeOpenAI,
) -> None:
    llm.script(Reply("Open the portal and click **Reset** [1]."))
    body = channel_mention(connector, "how do I reset my VPN password?")

    response = await post_activity(app_with_kb, identity, body)

    assert response.status == 200
    message = await connector.wait_for_text("Open the portal")
    assert message.conversation_id == body["conversation"]["id"]  # …;messageid=<root>
    assert message.reply_to_id == body["id"]
    assert message.activity["from"]["id"] == BOT_ID
    entity = ai_entity(message.activity)
    assert entity["additionalType"] == ["AIGeneratedContent"]
    assert entity["citation"][0]["appearance"]["url"] == "https://wiki.example.com/vpn"
    assert entity["citation"][0]["position"] == 1
    assert message.activity["channelData"]["feedbackLoop"] == {"type": "default"}
    # The model saw the question without the mention, and who asked (from the roster).
    prompt = llm.requests[0].json["messages"]
    assert prompt[-1]["content"] == "how do I reset my VPN password?"
    assert "Dave Taniguchi" in prompt[0]["content"]
    # Channels cannot stream: a typing indicator, then one message.
    assert not [a for a in connector.activities() if "streaminfo" in str(a.get("entities"))]
    assert connector.calls_to("reply")[0].activity["type"] == "typing"
    profile = await services(app_with_kb).profiles.get(f"teams:{TENANT}:{ASKER_AAD}")
    assert profile is not None and profile.email == "dave@example.com"


async def test_personal_chat_streams_then_sends_a_final_message_with_sources_and_feedback(
    app_with_kb: TestClient[Any, Any], identity: ChannelIdentity, connector: FakeConnector,
    llm: FakeOpenAI,
) -> None:
    gate = asyncio.Event()
    # The model takes a moment to start (as real ones do), so the informative update shows.
    llm.script(Hang(seconds=1.0, then=Reply(
        "Open the portal and click **Reset** [1]. It takes a minute.", chunk_size=8, gate=gate,
    )))
    body = personal(connector, "how do I reset my VPN password?")

    await post_activity(app_with_kb, identity, body)
    await connector.wait_for(lambda c: "informative" in str(c.activity.get("entities")))
    await asyncio.sleep(1.1)  # Teams wants a second between updates: let the stream move
    gate.set()
    final = await connector.wait_for_text("It takes a minute")

    [stream] = connector.streams.values()
    kinds = [chunk.stream_type for chunk in stream.chunks]
    assert kinds[0] == "informative" and "streaming" in kinds
    assert stream.finished and final.stream_id == stream.id
    gaps = [b.at - a.at for a, b in zip(stream.chunks, stream.chunks[1:], strict=False)]
    assert all(gap >= 1.0 for gap in gaps)
    assert connector.violations == []
    assert ai_entity(final.activity)["citation"][0]["appearance"]["name"] == VPN.title
    assert final.activity["channelData"]["feedbackLoop"] == {"type": "default"}
    assert [m.text for m in connector.messages()] == [final.text]


async def test_personal_chat_falls_back_to_one_message_when_streaming_is_refused(
    app: TestClient[Any, Any], identity: ChannelIdentity, connector: FakeConnector,
    llm: FakeOpenAI,
) -> None:
    connector.disable_streaming()
    llm.script(Reply("All of it, in one message."))

    await post_activity(app, identity, personal(connector, "hi"))

    message = await connector.wait_for_text("All of it")
    await settled(app)
    assert message.text == "All of it, in one message."
    assert message.stream_id is None
    assert len(connector.messages()) == 1
    # A 403 means this chat cannot stream: it is not tried again for every part.
    assert len([a for a in connector.activities() if "streaminfo" in str(a.get("entities"))]) == 1


async def test_feedback_is_stored_with_the_answer_and_gets_an_empty_200(
    app: TestClient[Any, Any], identity: ChannelIdentity, connector: FakeConnector,
    llm: FakeOpenAI,
) -> None:
    llm.script(Reply("Here you go."))
    await post_activity(app, identity, personal(connector, "help me"))
    answer = await connector.wait_for_text("Here you go")
    await settled(app)
    invoke = activity(
        "msdocs_invoke_message_submitAction_feedback.json", connector,
        type="invoke", id="f:feedback-1", channelId="msteams", replyToId=answer.id,
        conversation=personal(connector, "")["conversation"],
        **{"from": personal(connector, "")["from"]},
    )
    invoke["value"]["actionValue"] = {
        "reaction": "dislike", "feedback": '{"feedbackText": "Too short."}',
    }

    response = await post_activity(app, identity, invoke)

    assert response.status == 200
    assert await response.read() == b""
    chat = ConversationRef(channel="teams", tenant=TENANT,
                           conversation=invoke["conversation"]["id"])
    turn_id = await services(app).sent_messages.turn_of(chat, answer.id)
    assert turn_id is not None
    ratings = await services(app).feedback.ratings(turn_id)
    assert ratings == {f"teams:{TENANT}:{PERSONAL_AAD}": "down"}


async def test_feedback_on_a_message_that_is_not_an_answer_is_not_stored(
    app: TestClient[Any, Any], identity: ChannelIdentity, connector: FakeConnector,
) -> None:
    invoke = activity(
        "msdocs_invoke_message_submitAction_feedback.json", connector,
        type="invoke", id="f:feedback-2", channelId="msteams", replyToId="1:not-ours",
        conversation=personal(connector, "")["conversation"],
        **{"from": personal(connector, "")["from"]},
    )

    response = await post_activity(app, identity, invoke)

    assert response.status == 200
    assert await response.read() == b""


async def test_help_is_answered_without_the_model(
    app: TestClient[Any, Any], identity: ChannelIdentity, connector: FakeConnector,
    llm: FakeOpenAI,
) -> None:
    await post_activity(app, identity, personal(connector, "help"))

    message = await connector.wait_for_text("answers questions")
    assert "mention" in message.text
    assert llm.requests == []


async def test_the_bot_added_to_a_group_chat_says_hello_once(
    app: TestClient[Any, Any], identity: ChannelIdentity, connector: FakeConnector,
) -> None:
    body = activity("bbjs_conversationUpdate_groupChat.json", connector)
    body["membersAdded"].append({"id": BOT_ID})

    assert (await post_activity(app, identity, body)).status == 200
    assert (await post_activity(app, identity, body)).status == 200  # redelivered

    message = await connector.wait_for_text("Ask me anything")
    assert message.conversation_id == body["conversation"]["id"]
    assert len(connector.messages()) == 1


async def test_someone_joining_a_team_is_not_greeted(
    app: TestClient[Any, Any], identity: ChannelIdentity, connector: FakeConnector,
) -> None:
    body = activity("bbjs_conversationUpdate_teamMemberAdded.json", connector)

    assert (await post_activity(app, identity, body)).status == 200
    assert connector.calls == []


async def test_a_channel_message_without_a_mention_is_not_answered(
    app: TestClient[Any, Any], identity: ChannelIdentity, connector: FakeConnector,
) -> None:
    body = channel_mention(connector, "just chatting")
    body["entities"] = [e for e in body["entities"] if e["type"] != "mention"]

    assert (await post_activity(app, identity, body)).status == 200
    await settled(app)
    assert connector.calls == []


async def test_tokens_for_the_connector_are_acquired_once_and_sent_with_every_call(
    app: TestClient[Any, Any], identity: ChannelIdentity, connector: FakeConnector,
    llm: FakeOpenAI, login: FakeLogin,
) -> None:
    llm.script(Reply("one"), Reply("two"), Reply("three"))
    before = len(login.token_requests)
    for n, question in enumerate(("a?", "b?", "c?")):
        await post_activity(app, identity, channel_mention(connector, question, id=f"9{n}"))
    await connector.wait_for_text("three")
    await settled(app)

    assert len(login.token_requests) - before <= 1
    for call in connector.calls:
        claims = login.decode(call.bearer or "", audience="https://api.botframework.com")
        assert claims["appid"] == "eac5e5c6-ab14-4f50-80cb-49213fe51b1a"


async def test_a_long_answer_arrives_in_parts_that_fit_with_feedback_on_the_last(
    app: TestClient[Any, Any], identity: ChannelIdentity, connector: FakeConnector,
    llm: FakeOpenAI,
) -> None:
    paragraphs = [f"Paragraph {n}: " + "lorem ipsum dolor sit amet " * 40 for n in range(40)]
    llm.script(Reply("\n\n".join(paragraphs), chunk_size=4000))

    await post_activity(app, identity, personal(connector, "tell me everything"))
    await connector.wait_for_text("Paragraph 39")
    await settled(app)

    messages = connector.messages()
    assert len(messages) >= 3
    assert all(len(m.text.encode("utf-16-le")) <= 28_000 for m in messages)
    assert messages[0].stream_id is not None  # the stream became the first part
    feedback = ["feedbackLoop" in (m.activity.get("channelData") or {}) for m in messages]
    assert feedback == [False] * (len(messages) - 1) + [True]
    assert " ".join(m.text for m in messages).split() == " ".join(paragraphs).split()
    assert connector.violations == []
