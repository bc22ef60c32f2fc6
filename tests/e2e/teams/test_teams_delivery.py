"""Delivery: acknowledged at once, answered proactively, exactly once, only to allowed
hosts; the connector's 429 retried, its 5xx never (a POST may have arrived)."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from botbuilder.core import TurnContext
from botbuilder.schema import Activity
from sqlalchemy import text

from adapters.sql import units
from core.errors import StorageError
from core.messages import ConversationRef
from tests.e2e.conftest import (
    idle,
    notes_failing,
    services,
    serving,
    taken_over_while_away,
)
from tests.e2e.teams.conftest import (
    TENANT,
    TeamsSettings,
    channel_mention,
    personal,
    post_activity,
    settled,
)
from tests.fakes.bot_framework import ChannelIdentity, FakeConnector, FakeLogin
from tests.fakes.openai_server import Cut, FakeOpenAI, Reply


async def test_a_long_model_turn_does_not_hold_the_request_and_the_answer_comes_later(
    app: TestClient[Any, Any], identity: ChannelIdentity, connector: FakeConnector,
    llm: FakeOpenAI,
) -> None:
    gate = asyncio.Event()  # the model is "thinking" until the test says otherwise
    llm.script(Reply("Finally, the answer.", gate=gate))

    response = await post_activity(app, identity, channel_mention(connector, "hard question"))

    assert response.status == 200
    await llm.wait_for_requests(1)
    # While the model thinks, the person sees that the message arrived.
    await connector.wait_for_activity(lambda a: a.get("type") == "typing")
    assert not [m for m in connector.messages() if "Finally" in m.text]
    gate.set()
    message = await connector.wait_for_text("Finally, the answer.")
    assert message.reply_to_id is not None


async def test_a_redelivered_activity_is_answered_once(
    app: TestClient[Any, Any], identity: ChannelIdentity, connector: FakeConnector,
    llm: FakeOpenAI,
) -> None:
    gate = asyncio.Event()
    llm.script(Reply("Only once.", gate=gate), Reply("A second answer!"))
    body = channel_mention(connector, "are you there?")

    first = await post_activity(app, identity, body)
    await llm.wait_for_requests(1)
    again = await post_activity(app, identity, body)  # Teams redelivers after ~15 s
    gate.set()
    await connector.wait_for_text("Only once.")
    await settled(app)
    later = await post_activity(app, identity, body)  # and again after the answer
    await settled(app)

    assert (first.status, again.status, later.status) == (200, 200, 200)
    assert [m.text for m in connector.messages()] == ["Only once."]
    assert len(llm.requests) == 1


async def test_a_service_url_off_the_allow_list_gets_nothing_and_no_token_is_requested(
    teams_settings: TeamsSettings, identity: ChannelIdentity, connector: FakeConnector,
    llm: FakeOpenAI, login: FakeLogin, caplog: pytest.LogCaptureFixture,
) -> None:
    llm.script(Reply("This must not leave."))
    before = len(login.token_requests)
    caplog.set_level(logging.ERROR, logger="adapters.teams.connector")
    settings = teams_settings(teams_service_url_allowlist="smba.trafficmanager.net")
    async with serving(settings) as app:
        await post_activity(app, identity, channel_mention(connector, "hello"))
        await settled(app)

    assert connector.calls == []
    assert len(login.token_requests) == before
    assert "not in TEAMS_SERVICE_URL_ALLOWLIST" in caplog.text


async def test_a_429_from_the_connector_is_retried_after_retry_after(
    app: TestClient[Any, Any], identity: ChannelIdentity, connector: FakeConnector,
    llm: FakeOpenAI,
) -> None:
    llm.script(Reply("Worth the wait."))
    connector.script(429, headers={"Retry-After": "0"}, times=2,
                     when=lambda call: call.activity.get("type") == "message")

    await post_activity(app, identity, channel_mention(connector, "hello"))

    await connector.wait_for_text("Worth the wait.")
    statuses = [c.status for c in connector.calls if c.activity.get("type") == "message"]
    assert statuses == [429, 429, 201]


async def test_a_5xx_after_the_answer_is_posted_is_not_retried_blindly(
    app: TestClient[Any, Any], identity: ChannelIdentity, connector: FakeConnector,
    llm: FakeOpenAI,
) -> None:
    llm.script(Reply("Maybe delivered."))
    connector.script(503, deliver=True, when=lambda call: "Maybe delivered" in call.text)

    await post_activity(app, identity, channel_mention(connector, "hello"))
    await settled(app)

    posts = [c for c in connector.calls if "Maybe delivered" in c.text]
    assert len(posts) == 1
    # The person still hears something: a short apology, never a stack trace.
    apology = await connector.wait_for_text("reference")
    assert "Traceback" not in apology.text


async def test_an_answer_survives_a_restart_through_the_stored_reference(
    teams_settings: TeamsSettings, identity: ChannelIdentity, connector: FakeConnector,
    llm: FakeOpenAI,
) -> None:
    settings = teams_settings()
    gate = asyncio.Event()
    llm.script(Reply("never finished", gate=gate))
    async with serving(settings) as first:
        await post_activity(first, identity, personal(connector, "are you still there?"))
        await llm.wait_for_requests(1)
    # That process is gone; its claim was released. A new one picks the message up.
    llm.script(Reply("Yes, after a restart."))
    async with serving(settings) as second:
        message = await connector.wait_for_text("Yes, after a restart.", timeout=10)
        await settled(second)
        async with services(second).stores.engine.connect() as conn:
            statuses = (await conn.execute(text("SELECT status FROM inbox"))).scalars().all()
    gate.set()
    assert message.reply_to_id == personal(connector, "")["id"]
    assert statuses == ["done"]


async def test_a_restart_finishes_the_stream_the_stopped_process_left_open(
    teams_settings: TeamsSettings, identity: ChannelIdentity, connector: FakeConnector,
    llm: FakeOpenAI,
) -> None:
    """A 1:1 answer was streaming when its process stopped: the next process answers into
    that stream (its final), not a second one beside a cut-off first."""
    settings = teams_settings()
    gate = asyncio.Event()
    llm.script(Reply("An answer that never finished", gate=gate))
    async with serving(settings) as first:
        await post_activity(first, identity, personal(connector, "are you still there?"))
        await llm.wait_for_requests(1)
        noted = None
        for _ in range(200):  # until the stream is open and noted
            async with services(first).stores.engine.connect() as conn:
                noted = (await conn.execute(text("SELECT reply_id FROM inbox"))).scalar()
            if noted:
                break
            await asyncio.sleep(0.02)
    [opened] = connector.streams.values()
    llm.script(Reply("Yes, after a restart."))
    async with serving(settings) as second:
        final = await connector.wait_for_text("Yes, after a restart.", timeout=10)
        await settled(second)
    gate.set()
    assert noted == f"stream:{opened.id}"
    assert list(connector.streams) == [opened.id]  # no second stream
    assert opened.finished and final.text == "Yes, after a restart."
    assert connector.violations == []


async def test_an_answer_sent_but_not_recorded_as_delivered_is_replaced_not_repeated(
    teams_settings: TeamsSettings, identity: ChannelIdentity, connector: FakeConnector,
    llm: FakeOpenAI, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The channel answer went out, then the process died before recording it: the next
    process delivers the stored answer by replacing that message, not by a second one."""
    settings = teams_settings()
    llm.script(Reply("Delivered just before the end."))
    async with serving(settings) as first:
        async def died(*_: object, **__: object) -> None:
            raise asyncio.CancelledError  # the process stops right after sending

        monkeypatch.setattr(services(first).inbox, "finish_delivery", died)
        await post_activity(first, identity, channel_mention(connector, "last words?"))
        await connector.wait_for_text("Delivered just before the end.")
    async with serving(settings) as second:
        await settled(second)
        async with services(second).stores.engine.connect() as conn:
            statuses = (await conn.execute(text("SELECT status FROM inbox"))).scalars().all()
    assert statuses == ["done"]
    assert [m.text for m in connector.messages()] == ["Delivered just before the end."]
    assert [c.method for c in connector.calls if c.kind == "update"] == ["PUT"]
    assert len(llm.requests) == 1


@pytest.mark.parametrize("noted", [True, False], ids=["apology-noted", "database-down"])
async def test_an_answer_the_database_refused_is_replaced_by_the_retry_not_repeated(
    teams_settings: TeamsSettings, identity: ChannelIdentity, connector: FakeConnector,
    llm: FakeOpenAI, monkeypatch: pytest.MonkeyPatch, noted: bool,
) -> None:
    """A 1:1 answer streamed in full, then the database refused to store it: the stream
    ends with the answer and an apology. Teams redelivers; the retry's answer replaces
    that message (by its id, noted when it was sent, or else the stream's, whose final
    Teams refuses once the stream is finished) instead of appearing beside it."""
    monkeypatch.setattr("core.inbox.STORE_PATIENCE", 0.2)
    llm.script(Reply("The first answer."), Reply("The answer, stored."))
    activity = personal(connector, "what now?")
    async with serving(teams_settings()) as app:
        inbox = services(app).inbox
        finish_turn, note_replies = inbox.finish_turn, units.note_replies

        async def unavailable(*_: object, **__: object) -> None:
            raise StorageError("the database is restarting")

        def note_while_up(
            conn: Any, notes: list[tuple[int, str, str]], now: Any
        ) -> set[tuple[int, str, str]]:
            if not noted and any(shown.startswith("message:") for _, shown, _ in notes):
                raise StorageError("the database is restarting")
            return note_replies(conn, notes, now)

        monkeypatch.setattr(inbox, "finish_turn", unavailable)
        monkeypatch.setattr(units, "note_replies", note_while_up)
        await post_activity(app, identity, activity)
        apology = await connector.wait_for_text("Sorry", timeout=10)
        await settled(app)
        assert apology.text.startswith("The first answer.") and "Sorry" in apology.text

        monkeypatch.setattr(inbox, "finish_turn", finish_turn)
        await post_activity(app, identity, activity)  # Teams' redelivery
        await connector.wait_for_text("The answer, stored.", timeout=10)
        await settled(app)

    [answer] = connector.messages()
    assert answer.id == apology.id and answer.text == "The answer, stored."
    assert [c.method for c in connector.calls if c.kind == "update"] == ["PUT"]
    assert len(connector.streams) == 1  # the retry opened no second stream
    # Without the note, the retry first tried the finished stream's final (refused).
    assert len(connector.violations) == (0 if noted else 1)


@pytest.mark.parametrize("noted", [False, True], ids=["note-lost", "noted"])
async def test_a_worker_that_lost_its_message_to_another_takes_back_its_stream(
    teams_settings: TeamsSettings, identity: ChannelIdentity, connector: FakeConnector,
    llm: FakeOpenAI, monkeypatch: pytest.MonkeyPatch, noted: bool,
) -> None:
    """Mid-answer in a 1:1 chat, this process was cut off from the database for longer
    than its lease, and another worker took the message over. Back, it deletes the
    stream it had opened (unless it was noted before the takeover: the new owner
    finishes it), and gives the chat's one stream back for the next answer."""
    monkeypatch.setattr("core.inbox.STORE_PATIENCE", 0.2)
    gate = asyncio.Event()
    llm.script(Reply("An answer the new owner will give again.", gate=gate),
               Reply("The next question's answer."))
    async with serving(teams_settings(lease_seconds=3)) as app:
        with notes_failing(monkeypatch, failing=not noted):  # as the stream opened
            await post_activity(app, identity, personal(connector, "one?", id="1700000000001"))
            await connector.wait_for(lambda _: bool(connector.streams))  # a stream opened
            [opened] = connector.streams.values()
            taken = await taken_over_while_away(
                app, monkeypatch, noted=f"stream:{opened.id}" if noted else None)
        gate.set()
        await idle(app)
        if not noted:  # the next question in that chat streams as usual
            await post_activity(app, identity, personal(connector, "two?", id="1700000000002"))
            await connector.wait_for_text("The next question's answer.")
            await idle(app)

    assert taken.item.reply_id == (f"stream:{opened.id}" if noted else None)
    deletes = [c for c in connector.calls if c.method == "DELETE"]
    if noted:
        assert list(connector.streams) == [opened.id] and not opened.finished
        assert deletes == []
    else:
        assert opened.id not in connector.streams and len(deletes) == 1
        [answer] = connector.messages()
        assert answer.text == "The next question's answer." and answer.stream_id is not None
    assert connector.violations == []


async def test_a_worker_taken_over_while_recording_a_delivery_leaves_the_answer_shown(
    teams_settings: TeamsSettings, identity: ChannelIdentity, connector: FakeConnector,
    llm: FakeOpenAI, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The 1:1 answer was streamed and finished (the stream's final is the message, noted
    as such), then the database went away before its delivery was recorded, for longer
    than the lease: another worker took the item over, to deliver the stored answer into
    that same message. The first worker, stopped by its next renewal, takes nothing back:
    the message it would have withdrawn is the one the new owner was told to finish."""
    llm.script(Reply("The answer, shown and stored."))
    async with serving(teams_settings(lease_seconds=3)) as app:
        inbox = services(app).inbox
        recording = asyncio.Event()

        async def never(*_: object, **__: object) -> bool:
            recording.set()
            await asyncio.Event().wait()  # the database does not answer
            raise AssertionError("unreachable")

        monkeypatch.setattr(inbox, "finish_delivery", never)
        await post_activity(app, identity, personal(connector, "one?"))
        await recording.wait()
        [shown] = connector.messages()
        taken = await taken_over_while_away(app, monkeypatch, noted=f"message:{shown.id}")
        await idle(app)

    assert taken.item.status == "answered"  # the new owner delivers what is stored
    assert [m.text for m in connector.messages()] == ["The answer, shown and stored."]
    assert [c for c in connector.calls if c.method == "DELETE"] == []


async def test_activities_from_a_tenant_not_allowed_are_ignored(
    teams_settings: TeamsSettings, identity: ChannelIdentity, connector: FakeConnector,
) -> None:
    async with serving(teams_settings(teams_allowed_tenants="another-tenant")) as app:
        response = await post_activity(app, identity, personal(connector, "hello"))
        await settled(app)
        async with services(app).stores.engine.connect() as conn:
            stored = (await conn.execute(text("SELECT count(*) FROM inbox"))).scalar()

    assert response.status == 200
    assert stored == 0
    assert connector.calls == []


async def test_two_quick_questions_in_one_chat_never_open_two_streams_at_once(
    app: TestClient[Any, Any], identity: ChannelIdentity, connector: FakeConnector,
    llm: FakeOpenAI,
) -> None:
    first_gate = asyncio.Event()
    llm.script(Reply("First answer.", gate=first_gate), Reply("Second answer."))

    await post_activity(app, identity, personal(connector, "one?", id="1700000000001"))
    await llm.wait_for_requests(1)
    await post_activity(app, identity, personal(connector, "two?", id="1700000000002"))
    await connector.wait_for_text("Second answer.")
    first_gate.set()
    await connector.wait_for_text("First answer.")
    await settled(app)

    assert connector.violations == []
    assert sorted(m.text for m in connector.messages()) == ["First answer.", "Second answer."]


async def test_the_stored_reference_is_the_one_botbuilder_built(
    app: TestClient[Any, Any], identity: ChannelIdentity, connector: FakeConnector,
    llm: FakeOpenAI,
) -> None:
    # Inbox items and conversation references already in databases hold this JSON.
    llm.script(Reply("Noted."))
    body = channel_mention(connector, "remember me")
    expected = TurnContext.get_conversation_reference(Activity().deserialize(body)).serialize()

    await post_activity(app, identity, body)
    await connector.wait_for_text("Noted.")
    await settled(app)

    async with services(app).stores.engine.connect() as conn:
        payload = (await conn.execute(text("SELECT payload FROM inbox"))).scalar_one()
    payload = json.loads(payload) if isinstance(payload, str) else payload
    assert payload["channel_data"]["reference"] == expected
    channel, _, root = body["conversation"]["id"].partition(";messageid=")
    where = ConversationRef(channel="teams", tenant=TENANT, conversation=channel, thread=root)
    assert await services(app).references.get(where) == expected


async def test_a_message_botbuilder_must_read_is_answered_as_before(
    app: TestClient[Any, Any], identity: ChannelIdentity, connector: FakeConnector,
    llm: FakeOpenAI,
) -> None:
    # A field typed other than botbuilder's schema says (a number as a string): botbuilder
    # reads and converts it, so such a message takes botbuilder's turn.
    odd = {"textHighlights": [{"text": "odd", "occurrence": "1"}]}
    llm.script(Reply("Answered all the same."))

    asked = await post_activity(app, identity, personal(connector, "an odd one", **odd))
    helped = await post_activity(app, identity, personal(connector, "help", id="17000000077",
                                                         **odd))

    assert (asked.status, helped.status) == (200, 200)
    answer = await connector.wait_for_text("Answered all the same.")
    help_message = await connector.wait_for_text("answers questions")
    assert answer.reply_to_id == personal(connector, "")["id"]
    assert help_message.reply_to_id == "17000000077"
    assert help_message.activity["inputHint"] == "acceptingInput"


@pytest.mark.parametrize("where", ["personal", "channel"])
async def test_a_stream_that_breaks_mid_answer_keeps_what_was_said_and_says_it_is_incomplete(
    app: TestClient[Any, Any], identity: ChannelIdentity, connector: FakeConnector,
    llm: FakeOpenAI, where: str,
) -> None:
    """In a 1:1 chat the stream's final message replaces what it showed; in a channel
    nothing was shown yet: either way the apology carries what the model had said."""
    llm.script(Cut("To reset it, open the portal and then", pieces=3))
    activity = personal(connector, "how?") if where == "personal" else \
        channel_mention(connector, "how?")

    await post_activity(app, identity, activity)
    final = await connector.wait_for_text("incomplete")
    await settled(app)

    assert final.text.startswith("To reset it,")
    assert "the answer above is incomplete" in final.text
    assert final.reply_to_id == activity["id"]


async def test_an_activity_that_cannot_be_recorded_is_refused_with_503_then_taken_on_retry(
    app: TestClient[Any, Any], identity: ChannelIdentity, connector: FakeConnector,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    inbox = services(app).inbox
    accept = inbox.accept

    async def unavailable(*_: object, **__: object) -> None:
        raise StorageError("recording message failed")

    activity = channel_mention(connector, "hello")
    monkeypatch.setattr(inbox, "accept", unavailable)
    refused = await post_activity(app, identity, activity)
    assert refused.status == 503 and int(refused.headers["Retry-After"]) > 0

    monkeypatch.setattr(inbox, "accept", accept)
    assert (await post_activity(app, identity, activity)).status == 200  # Teams' retry
    await connector.wait_for_text("echo: hello")
    await settled(app)
    assert [m.text for m in connector.messages()] == ["echo: hello"]
