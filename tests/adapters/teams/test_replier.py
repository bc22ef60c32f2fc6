"""The Teams replier when Teams refuses a stream update: the person's Stop ends the answer
where it was shown; any other refusal falls back to one message. Driven over real HTTP
against the fake connector, through the real `BotConnector`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from adapters.teams.credentials import AppTokens
from adapters.teams.outbound import BotConnector, ServiceHosts
from adapters.teams.render import to_teams_markdown
from adapters.teams.replier import StreamSlots, TeamsReplier
from adapters.teams.stream_errors import stopped_by_user
from core.errors import AnswerStopped
from core.messages import ConversationRef
from core.replies import STOPPED_MARK, ReplyDone, ReplyFailed, Status, TextDelta
from tests.fakes.bot_framework import FakeConnector
from tests.fakes.stores import InMemorySentMessages

CHAT = "a:1VF4K2uXl-hg-wn2SSWJZYK7Cqox93Xp82wekVXkbOSa"
WHERE = ConversationRef(channel="teams", tenant="t1", conversation=CHAT)


class Clock:
    """Each reading is two seconds after the last: every update is due, none too late."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        self.now += 2.0
        return self.now


@pytest.fixture
async def connector() -> AsyncIterator[FakeConnector]:
    async with FakeConnector() as fake:
        yield fake


@pytest.fixture
async def bot(connector: FakeConnector) -> AsyncIterator[BotConnector]:
    tokens = AppTokens(lambda scope: {"access_token": "bot-token", "expires_in": 3600})
    async with aiohttp.ClientSession() as session:
        yield BotConnector(session, tokens, scope="https://api.botframework.com",
                           hosts=ServiceHosts(("127.0.0.1",)))


def reference(connector: FakeConnector) -> dict[str, Any]:
    return {
        "activityId": "1700000000000", "channelId": "msteams", "locale": "en-US",
        "serviceUrl": connector.base_url,
        "user": {"id": "29:user", "name": "Dave", "aadObjectId": "6b703ce3"},
        "bot": {"id": "28:bot", "name": "Switchboard"},
        "conversation": {"conversationType": "personal", "id": CHAT},
    }


def make_replier(
    connector: FakeConnector, bot: BotConnector, *, slots: StreamSlots | None = None,
    sent: InMemorySentMessages | None = None,
) -> TeamsReplier:
    ref = reference(connector)

    async def send(activity: dict[str, Any]) -> str | None:
        return await bot.send(ref, activity)

    return TeamsReplier(send=send, where=WHERE, personal=True, slots=slots,
                        sent=sent or InMemorySentMessages(), clock=Clock())


def stopped(text: str) -> ReplyDone:
    return ReplyDone(text=f"{text}\n\n{STOPPED_MARK}", stopped=True, feedback=False)


@pytest.mark.parametrize("message", [
    "Content stream was cancelled by user.",  # the Teams docs, and a real Stop (teams.ts #101)
    "Content stream was canceled by user.",  # as teams.py's tests spell it
])
def test_the_stop_body_is_told_from_the_other_refusals(message: str) -> None:
    assert stopped_by_user(403, "ContentStreamNotAllowed", message)
    assert not stopped_by_user(403, "ContentStreamNotAllowed", "Content stream is not allowed")
    assert not stopped_by_user(
        403, "ContentStreamNotAllowed", "Content stream finished due to exceeded streaming time.")
    assert not stopped_by_user(403, None, None)
    assert not stopped_by_user(404, "ContentStreamNotAllowed", message)


async def test_stop_ends_the_answer_where_it_was_shown_and_sends_nothing_more(
    connector: FakeConnector, bot: BotConnector,
) -> None:
    slots = StreamSlots()
    replier = make_replier(connector, bot, slots=slots)
    await replier.send(TextDelta(text="The first part"))
    connector.press_stop()

    with pytest.raises(AnswerStopped):
        await replier.send(TextDelta(text=" and the second"))
    with pytest.raises(AnswerStopped):  # still stopped: no more updates are tried
        await replier.send(TextDelta(text=" and a third"))
    assert await slots.take(CHAT)  # the chat's stream slot is free again
    await slots.release(CHAT)
    calls = len(connector.calls)
    await replier.send(stopped("The first part and the second"))

    assert len(connector.calls) == calls  # no final, no fallback message
    assert [m.text for m in connector.messages()] == ["The first part"]
    assert connector.violations == []


async def test_stop_while_working_ends_the_answer_too(
    connector: FakeConnector, bot: BotConnector,
) -> None:
    replier = make_replier(connector, bot)
    await replier.send(Status(text="Thinking…"))
    connector.press_stop()

    with pytest.raises(AnswerStopped):
        await replier.send(Status(text="Looking it up…"))
    await replier.send(stopped(""))

    assert [c.activity.get("type") for c in connector.calls] == ["typing", "typing"]
    assert connector.violations == []


async def test_stop_as_the_final_goes_out_keeps_the_shown_part_and_sends_no_copy(
    connector: FakeConnector, bot: BotConnector,
) -> None:
    sent = InMemorySentMessages()
    replier = make_replier(connector, bot, sent=sent)
    await replier.send(TextDelta(text="The first part"))
    connector.press_stop()

    await replier.send(ReplyDone(text="The first part and the rest.", turn_id=7))

    assert [m.text for m in connector.messages()] == ["The first part"]
    assert connector.calls[-1].status == 403
    assert connector.violations == []
    assert sent.db.sent_messages == {}  # no feedback buttons showed


@pytest.mark.parametrize("body", [
    {"error": {"code": "ContentStreamNotAllowed", "message": "Content stream is not allowed"}},
    {"error": {"code": "ContentStreamNotAllowed",
               "message": "Content stream finished due to exceeded streaming time."}},
    {"error": {"code": "ContentStreamNotAllowed", "message": "Message size too large"}},
    {"error": {"code": "Forbidden", "message": "Forbidden"}},
    {},
])
async def test_any_other_refusal_falls_back_to_one_message(
    body: dict[str, Any], connector: FakeConnector, bot: BotConnector,
) -> None:
    replier = make_replier(connector, bot)
    await replier.send(TextDelta(text="The first part"))
    connector.script(403, body=body, when=lambda call: call.activity.get("type") == "typing")

    await replier.send(TextDelta(text=" and the second"))
    await replier.send(ReplyDone(text="The first part and the second.", turn_id=7))

    *_, message = connector.messages()
    assert message.text == "The first part and the second."
    assert message.activity["channelData"]["feedbackLoop"] == {"type": "default"}


async def test_a_stop_from_elsewhere_finishes_the_stream_with_the_mark_and_no_feedback(
    connector: FakeConnector, bot: BotConnector,
) -> None:
    sent = InMemorySentMessages()
    replier = make_replier(connector, bot, sent=sent)
    await replier.send(TextDelta(text="The first part"))

    await replier.send(ReplyDone(text=f"The first part\n\n{STOPPED_MARK}", stopped=True,
                                 turn_id=7))

    [message] = connector.messages()
    [stream] = connector.streams.values()
    assert message.stream_id == stream.id and stream.final is not None
    assert message.text.endswith(to_teams_markdown(STOPPED_MARK))
    assert "feedbackLoop" not in (message.activity.get("channelData") or {})
    assert sent.db.sent_messages == {}
    assert connector.violations == []


async def test_a_failure_after_a_stop_apologises_without_repeating_the_answer(
    connector: FakeConnector, bot: BotConnector,
) -> None:
    replier = make_replier(connector, bot)
    await replier.send(TextDelta(text="The first part"))
    connector.press_stop()
    with pytest.raises(AnswerStopped):
        await replier.send(TextDelta(text=" and the second"))

    await replier.send(ReplyFailed(text="Sorry, I couldn't save this.", reference="r1"))

    assert [m.text for m in connector.messages()] == [
        "The first part", "Sorry, I couldn't save this. (reference r1)"]
    assert connector.violations == []
