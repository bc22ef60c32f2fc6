"""The answer always arrives: apologies, expired or unavailable streams, rate limits,
long answers, feedback clicks and allow-lists."""

from __future__ import annotations

import asyncio
import copy
import json
import urllib.parse
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from core.errors import StorageError
from tests.e2e.conftest import (
    idle,
    notes_failing,
    services,
    serving,
    taken_over_while_away,
)
from tests.e2e.slack.conftest import SlackSettings, fixture, mention, post_event, settled
from tests.fakes.openai_server import Cut, Fail, FakeOpenAI, Hang, Reply
from tests.fakes.slack_api import FakeSlack, RateLimited

ROOT = "1700000002.000100"


async def test_a_model_failure_leaves_an_apology_in_the_thread_and_stays_retryable(
    app: TestClient[Any, Any], slack: FakeSlack, llm: FakeOpenAI
) -> None:
    llm.script(Fail(status=500))

    await post_event(app, mention("hi", ts=ROOT))

    await slack.wait_for_text("C111", ROOT, "Sorry")
    await settled(app)
    (apology,) = slack.thread("C111", ROOT)
    assert "language model" in apology.text and "Traceback" not in apology.text
    item = await services(app).inbox.find(channel="slack", tenant="T111", message_id=f"C111:{ROOT}")
    assert item is not None and item.status == "failed"

    # Slack's own retry of the same event is answered this time.
    await post_event(app, mention("hi", ts=ROOT), headers={"X-Slack-Retry-Num": "1"})
    await slack.wait_for("chat.stopStream")
    assert slack.thread("C111", ROOT)[-1].text == "echo: hi"


async def test_a_message_that_cannot_be_recorded_is_refused_with_503_then_taken_on_retry(
    app: TestClient[Any, Any], slack: FakeSlack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The database refuses writes (locked, restarting): the event is not acknowledged,
    so Slack retries it; once the database is back the retry is answered, once."""
    inbox = services(app).inbox
    accept = inbox.accept

    async def unavailable(*_: object, **__: object) -> None:
        raise StorageError("recording message failed")

    monkeypatch.setattr(inbox, "accept", unavailable)
    refused = await post_event(app, mention("hi", ts=ROOT))
    assert refused.status == 503 and int(refused.headers["Retry-After"]) > 0
    assert "Traceback" not in await refused.text()

    monkeypatch.setattr(inbox, "accept", accept)
    retried = await post_event(app, mention("hi", ts=ROOT), headers={"X-Slack-Retry-Num": "1"})
    assert retried.status == 200
    await slack.wait_for("chat.stopStream")
    await settled(app)
    assert [m.text for m in slack.thread("C111", ROOT)] == ["echo: hi"]


async def test_a_model_that_never_sends_headers_gets_an_apology_at_the_deadline(
    slack_settings: SlackSettings, slack: FakeSlack, llm: FakeOpenAI
) -> None:
    """The server accepts the connection and says nothing: "Thinking…" shows, then the
    apology comes when the answer's deadline passes, not after the SDK's per-request
    timeout times its retries."""
    llm.script(Hang(seconds=600))
    settings = slack_settings(answer_deadline=1.0, model_timeout=30.0, model_retries=2)
    async with serving(settings) as app:
        await post_event(app, mention("hi", ts=ROOT))
        await slack.wait_for_text("C111", ROOT, "Sorry")
        await settled(app)
        item = await services(app).inbox.find(channel="slack", tenant="T111",
                                               message_id=f"C111:{ROOT}")

    statuses = slack.calls_to("assistant.threads.setStatus")
    (apology,) = slack.thread("C111", ROOT)
    assert statuses and statuses[0].body["loading_messages"] == ["Thinking…"]
    assert statuses[0].at < slack.calls_to("chat.postMessage")[0].at
    assert "took too long" in apology.text
    assert len(llm.requests) == 1  # no retry began past the deadline
    assert item is not None and item.status == "failed"


async def test_a_stream_that_breaks_mid_answer_ends_with_incomplete(
    app: TestClient[Any, Any], slack: FakeSlack, llm: FakeOpenAI
) -> None:
    llm.script(Cut("To reset it, open the portal and then", pieces=3))

    await post_event(app, mention("how do I reset it?", ts=ROOT))

    await slack.wait_for("chat.stopStream")
    await settled(app)
    (answer,) = slack.thread("C111", ROOT)
    assert answer.text.startswith("To reset it,\n\n")  # all it said, then the apology
    assert "the answer above is incomplete" in answer.text
    assert "reach the language model" not in answer.text
    item = await services(app).inbox.find(channel="slack", tenant="T111", message_id=f"C111:{ROOT}")
    assert item is not None and item.status == "failed"


@pytest.mark.parametrize("noted", [False, True], ids=["note-lost", "noted"])
async def test_a_worker_that_lost_its_message_to_another_takes_back_its_stream(
    slack_settings: SlackSettings, slack: FakeSlack, llm: FakeOpenAI,
    monkeypatch: pytest.MonkeyPatch, noted: bool,
) -> None:
    """Mid-answer, this process was cut off from the database for longer than its lease,
    and another worker took the message over. Back, it finds the message taken: it
    stores nothing, and the message it was streaming is taken back, so the new owner's
    answer is the only one in the thread — unless that message had been noted before the
    takeover: then the new owner finishes it, and it stays."""
    monkeypatch.setattr("core.inbox.STORE_PATIENCE", 0.2)
    gate = asyncio.Event()
    llm.script(Reply("An answer the new owner will give again.", gate=gate))
    async with serving(slack_settings(lease_seconds=3)) as app:
        with notes_failing(monkeypatch, failing=not noted):  # as the stream opened
            await post_event(app, mention("hi", ts=ROOT))
            await slack.wait_for("chat.startStream")
            (streaming,) = slack.thread("C111", ROOT)
            taken = await taken_over_while_away(app, monkeypatch,
                                                noted=streaming.ts if noted else None)
        gate.set()
        await idle(app)
        item = await services(app).inbox.get(taken.item.id)
        turns = await services(app).conversations.recent_turns(taken.conversation.id, 10)

    assert taken.item.reply_id == (streaming.ts if noted else None)
    assert item is not None and item.lease_owner == "another-worker"
    assert [t.role for t in turns] == ["user"]  # nothing stored by the worker that lost it
    chat = [c.method for c in slack.calls if c.method.startswith("chat.")]
    if noted:  # the new owner stops and replaces it (as after a crash)
        assert [m.ts for m in slack.thread("C111", ROOT)] == [streaming.ts]
        assert "chat.delete" not in chat
    else:
        assert slack.thread("C111", ROOT) == []
        assert chat[-2:] == ["chat.stopStream", "chat.delete"]


async def test_an_expired_stream_still_delivers_the_whole_answer(
    app: TestClient[Any, Any], slack: FakeSlack, llm: FakeOpenAI
) -> None:
    answer = "\n\n".join(f"Paragraph {n}: " + "words " * 40 for n in range(8))
    llm.script(Reply(answer, chunk_size=50))
    slack.expire_streams_after(1)

    await post_event(app, mention("tell me everything", ts=ROOT))

    await slack.wait_for("chat.update")
    messages = await wait_until_final(slack, ROOT)
    assert "".join(m.text for m in messages).count("Paragraph") == 8
    assert all(len(m.text) <= 4000 for m in messages)
    assert messages[-1].blocks is not None
    assert messages[-1].blocks[-1]["type"] == "context_actions"
    assert len(slack.calls_to("chat.startStream")) == 1


async def test_without_streaming_the_answer_is_posted_and_updated(
    app: TestClient[Any, Any], slack: FakeSlack, llm: FakeOpenAI
) -> None:
    slack.disable_streaming()
    llm.script(Reply("A short **answer**."))

    await post_event(app, mention("hi", ts=ROOT))

    messages = await wait_until_final(slack, ROOT)
    assert [m.text for m in messages] == ["A short *answer*."]
    assert len(slack.calls_to("chat.postMessage")) == 1


async def test_a_long_answer_is_split_on_paragraphs_within_slack_limits(
    app: TestClient[Any, Any], slack: FakeSlack, llm: FakeOpenAI
) -> None:
    answer = "\n\n".join(f"Section {n}. " + "text " * 300 for n in range(12))  # ~18,000 chars
    llm.script(Reply(answer, chunk_size=500))

    await post_event(app, mention("a long one", ts=ROOT))

    messages = await wait_until_final(slack, ROOT)
    assert len(messages) >= 2
    assert "".join(m.text for m in messages).count("Section") == 12
    assert all(m.text.rstrip().endswith("text") for m in messages)  # cut between paragraphs


async def test_rate_limited_calls_are_retried_after_retry_after(
    app: TestClient[Any, Any], slack: FakeSlack
) -> None:
    slack.script("chat.startStream", RateLimited(retry_after=1))

    await post_event(app, mention("hi", ts=ROOT))

    await slack.wait_for("chat.stopStream", timeout=10)
    first, second = slack.calls_to("chat.startStream")
    assert second.at - first.at >= 1.0
    assert [m.text for m in slack.thread("C111", ROOT)] == ["echo: hi"]


async def test_a_feedback_click_is_stored_with_the_answer_it_rates(
    app: TestClient[Any, Any], slack: FakeSlack
) -> None:
    await post_event(app, mention("rate me", ts=ROOT))
    (stop,) = await slack.wait_for("chat.stopStream")
    button = stop.body["blocks"][-1]["elements"][0]["negative_button"]
    (reply,) = slack.thread("C111", ROOT)

    click = copy.deepcopy(fixture("bolt_block_actions_payload.json"))
    click["user"]["id"] = "U222"
    click["actions"][0].update(action_id="feedback", type="feedback_buttons", value=button["value"])
    click["container"].update(message_ts=reply.ts, is_ephemeral=False)
    click["message"] = reply.to_slack()
    form = "payload=" + urllib.parse.quote(json.dumps(click))
    response = await post_event(app, form, content_type="application/x-www-form-urlencoded")

    assert response.status == 200
    turn_id = int(button["value"].split(":")[1])
    assert await services(app).feedback.ratings(turn_id) == {"slack:T111:U222": "down"}
    await slack.wait_for("chat.postEphemeral")


async def test_outside_the_allow_list_a_polite_private_refusal(
    slack_settings: SlackSettings, slack: FakeSlack, llm: FakeOpenAI
) -> None:
    async with serving(slack_settings(slack_allowed_channels="C999")) as app:
        assert (await post_event(app, mention("hi", ts=ROOT))).status == 200

        (refusal,) = slack.ephemerals
        assert refusal["user"] == "U222" and "not available" in refusal["text"]
        assert llm.requests == []


async def wait_until_final(slack: FakeSlack, root: str) -> list[Any]:
    """The thread once its last message carries the feedback buttons."""
    await slack.wait_for_text(
        "C111", root,
        lambda m: bool(m.blocks) and m.blocks[-1].get("type") == "context_actions",
        timeout=10,
    )
    return slack.thread("C111", root)
