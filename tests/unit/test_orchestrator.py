"""One turn end to end through the real composition root, with a scripted model and the
in-memory stores: no database is touched."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bots.bootstrap import Switchboard, bootstrap
from bots.settings import load_settings
from core.errors import ModelError, StorageError
from core.inbox import (
    Acceptance,
    Claim,
    Duplicate,
    Exhausted,
    InboxItem,
    Recorded,
    Requeued,
    Started,
    TurnStart,
)
from core.messages import ConversationRef, InboundMessage, Sender
from core.profiles import Profile
from core.replies import (
    ReplyDone,
    ReplyEvent,
    ReplyFailed,
    ReplyWithdrawn,
    Status,
    ToolProgress,
)
from core.worker import Worker
from tests.fakes.scripted import STALL, RecordingReplier, ScriptedChatModel, calls, says
from tests.fakes.stores import in_memory_stores

ADA = Sender(id="test:t1:ada", name="Ada Lovelace", email="ada@example.com")


def message(text: str, *, mid: str = "m1", thread: str = "th1") -> InboundMessage:
    return InboundMessage(
        id=mid,
        conversation=ConversationRef(channel="test", tenant="t1", conversation="dm", thread=thread),
        sender=ADA,
        text=text,
        sent_at=datetime.now(UTC),
        is_direct=True,
    )


@pytest.fixture
def model() -> ScriptedChatModel:
    return ScriptedChatModel()


@pytest.fixture
async def sb(tmp_path: Path, model: ScriptedChatModel) -> AsyncIterator[Switchboard]:
    settings = load_settings(data_dir=tmp_path, max_tool_rounds=2)
    async with bootstrap(
        settings, model=model, stores=in_memory_stores(), open_knowledge=False
    ) as services:
        yield services


def worker_of(sb: Switchboard) -> Worker:
    assert sb.worker is not None
    return sb.worker


async def answered_by_the_worker(sb: Switchboard) -> RecordingReplier:
    """Run the worker's claim loop until it has answered (or apologised) once."""
    replier = RecordingReplier()
    sb.repliers.register("test", _Fixed(replier))
    worker = asyncio.create_task(worker_of(sb).run())
    try:
        await asyncio.wait_for(replier.finished.wait(), timeout=10)
    finally:
        worker.cancel()
    return replier


async def begun_by(sb: Switchboard, owner: str) -> Started:
    """A turn begun by a worker whose lease has already run out (it died, or stalled)."""
    claim = Claim(owner=owner, lease=timedelta(0))
    outcome = await sb.inbox.accept(Acceptance(message=message("hi"), claim=claim))
    assert isinstance(outcome, Recorded)
    start = await sb.inbox.begin_turn(outcome.item.id, claim)
    assert isinstance(start, Started)
    return start


async def answer(sb: Switchboard, msg: InboundMessage) -> RecordingReplier:
    replier = RecordingReplier()
    await worker_of(sb).answer_now(Acceptance(message=msg), replier)
    return replier


async def test_these_tests_touch_no_database(
    tmp_path: Path, sb: Switchboard, model: ScriptedChatModel
) -> None:
    model.steps = [says("Hello.")]
    await answer(sb, message("hi"))
    assert await sb.inbox.find(channel="test", tenant="t1", message_id="m1") is not None

    assert sb.stores.engine is None and sb.stores.executor is None
    assert sb.settings.data_dir == tmp_path
    assert list(tmp_path.rglob("*.db*")) == []  # no SQLite file (nor its -wal, -shm)


async def test_plain_answer_streams_then_persists_and_completes(
    sb: Switchboard, model: ScriptedChatModel
) -> None:
    model.steps = [says("Hello ", "Ada.")]
    replier = await answer(sb, message("hi"))
    # (An answer that starts at once shows no status: tests/unit/test_first_sign.py.)
    # A new conversation is named after its first question, just before the answer ends.
    assert [k for k in replier.kinds() if k != "status"] == ["delta", "delta", "title", "done"]
    done = replier.events[-1]
    assert isinstance(done, ReplyDone) and done.text == "Hello Ada."
    conv = await sb.conversations.latest(channel="test", owner=ADA.id)
    assert conv is not None
    turns = await sb.conversations.recent_turns(conv.id, 10)
    assert [(t.role, t.content) for t in turns] == [("user", "hi"), ("assistant", "Hello Ada.")]
    assert done.turn_id == turns[-1].id
    item = await sb.inbox.get(turns[0].inbox_item_id or 0)
    assert item is not None and item.status == "done"


async def test_tool_call_round_trip_acts_as_the_verified_sender(
    sb: Switchboard, model: ScriptedChatModel
) -> None:
    await sb.profiles.upsert(Profile(id=ADA.id, title="Analyst", department="Engines"))
    model.steps = [calls(("get_user_info", "{}")), says("You work in Engines.")]
    replier = await answer(sb, message("where do I work?"))

    assert Status(text="Looking up your profile…") in replier.events
    progress = [e for e in replier.events if isinstance(e, ToolProgress)]
    assert [p.state for p in progress] == ["running", "done"]
    second = model.requests[1].messages
    assert second[-2].tool_calls[0].name == "get_user_info"
    result = json.loads(second[-1].content)
    assert result["id"] == ADA.id and result["department"] == "Engines"
    assert replier.events[-1] == ReplyDone(
        text="You work in Engines.", turn_id=replier.events[-1].turn_id  # type: ignore[union-attr]
    )
    conv = await sb.conversations.latest(channel="test", owner=ADA.id)
    turns = await sb.conversations.recent_turns(conv.id, 10)  # type: ignore[union-attr]
    assert [t.role for t in turns] == ["user", "assistant", "tool", "assistant"]


async def test_model_cannot_name_another_user_for_a_tool(
    sb: Switchboard, model: ScriptedChatModel
) -> None:
    model.steps = [calls(("get_user_info", '{"user_id": "test:t1:grace"}')), says("I can't.")]
    await answer(sb, message("show me Grace's profile"))
    tool_result = model.requests[1].messages[-1].content
    assert tool_result == (
        "Invalid arguments for get_user_info: user_id: Extra inputs are not permitted."
    )


async def test_model_failure_apologises_keeps_the_message_and_a_redelivery_retries(
    sb: Switchboard, model: ScriptedChatModel
) -> None:
    model.steps = [ModelError("upstream 500"), says("Now it works.")]
    first = await answer(sb, message("hello?"))
    failed = first.events[-1]
    assert isinstance(failed, ReplyFailed)
    assert failed.text == ModelError.user_message and "500" not in failed.text

    conv = await sb.conversations.latest(channel="test", owner=ADA.id)
    turns = await sb.conversations.recent_turns(conv.id, 10)  # type: ignore[union-attr]
    assert [(t.role, t.content) for t in turns] == [("user", "hello?")]
    item = await sb.inbox.get(turns[0].inbox_item_id or 0)
    assert item is not None and item.status == "failed"

    second = await answer(sb, message("hello?"))
    assert second.events[-1].kind == "done"
    turns = await sb.conversations.recent_turns(conv.id, 10)  # type: ignore[union-attr]
    assert [t.role for t in turns] == ["user", "assistant"]  # the user turn is not doubled


async def test_the_same_message_is_answered_once(sb: Switchboard, model: ScriptedChatModel) -> None:
    model.steps = [says("Once.")]
    await answer(sb, message("hi"))
    replier = RecordingReplier()
    outcome = await worker_of(sb).answer_now(Acceptance(message=message("hi")), replier)
    assert isinstance(outcome, Duplicate) and outcome.status == "done"
    assert replier.events == [] and len(model.requests) == 1


async def test_tool_rounds_are_bounded_and_the_last_round_offers_no_tools(
    sb: Switchboard, model: ScriptedChatModel
) -> None:
    model.steps = [calls(("get_user_info", "{}")), calls(("get_user_info", "{}")), says("Done.")]
    replier = await answer(sb, message("loop forever"))
    assert [bool(r.tools) for r in model.requests] == [True, True, False]
    assert replier.events[-1].kind == "done"


async def test_history_and_profile_reach_the_model(sb: Switchboard, model: ScriptedChatModel) -> None:
    await sb.profiles.upsert(Profile(id=ADA.id, name="Ada", time_zone="Europe/London"))
    model.steps = [says("First."), says("Second.")]
    await answer(sb, message("one", mid="m1"))
    await answer(sb, message("two", mid="m2"))
    sent = model.requests[1].messages
    assert [(m.role, m.content) for m in sent[1:]] == [
        ("user", "one"), ("assistant", "First."), ("user", "two")
    ]
    assert "Europe/London" in sent[0].content and "name: Ada" in sent[0].content


async def test_a_crash_between_begin_and_finish_is_answered_once_after_restart(
    sb: Switchboard, model: ScriptedChatModel
) -> None:
    model.steps = [says("Answered.")]
    # The turn begins (the person's turn is stored), then the process dies...
    first = await begun_by(sb, "dead")
    # ...so once the lease has expired, another worker claims it and answers, once.
    replier = await answered_by_the_worker(sb)
    assert replier.events[-1].kind == "done" and len(model.requests) == 1
    turns = await sb.conversations.recent_turns(first.conversation.id, 10)
    assert [(t.role, t.content) for t in turns] == [("user", "hi"), ("assistant", "Answered.")]
    item = await sb.inbox.get(first.item.id)
    assert item is not None and item.status == "done" and item.attempts == 2


async def test_an_answer_stored_but_not_delivered_is_delivered_after_a_crash_not_answered_again(
    sb: Switchboard, model: ScriptedChatModel
) -> None:
    """The process stored the answer, then died before recording its delivery: the next
    worker delivers the stored answer; the model is asked once in all."""
    model.steps = [says("Stored, then the process died.")]
    start = await begun_by(sb, "dead")
    lost = RecordingReplier()

    class Dies(RecordingReplier):
        async def send(self, event: ReplyEvent) -> None:
            if event.kind == "done":
                raise asyncio.CancelledError  # killed mid-delivery
            await lost.send(event)

    orchestrator = sb.orchestrator
    assert orchestrator is not None
    with pytest.raises(asyncio.CancelledError):
        await orchestrator.answer(start, Dies(), owner="dead")
    item = await sb.inbox.get(start.item.id)
    assert item is not None and item.status == "answered"

    replier = await answered_by_the_worker(sb)
    assert replier.text() == "Stored, then the process died."
    done = replier.events[-1]
    assert isinstance(done, ReplyDone) and done.text == "Stored, then the process died."
    assert len(model.requests) == 1
    turns = await sb.conversations.recent_turns(start.conversation.id, 10)
    assert [t.role for t in turns] == ["user", "assistant"]
    item = await sb.inbox.get(start.item.id)
    assert item is not None and item.status == "done"


@pytest.mark.parametrize("noted", [False, True])
async def test_a_worker_whose_item_was_taken_over_takes_back_what_it_showed(
    sb: Switchboard, model: ScriptedChatModel, noted: bool
) -> None:
    """A worker stalled (or cut off from the database) past its lease while it answered;
    another took the item over. Its answer is not stored and the item not settled by it:
    it tells its channel to take back what it showed — unless that message was noted
    before the takeover, so the new owner finishes it."""
    model.steps = [says("Written by the stalled worker.")]
    start = await begun_by(sb, "stalled")
    if noted:  # its stream was noted while it still held the item
        assert await sb.inbox.note_reply(start.item.id, "shown-1", owner="stalled")
    [taken] = await sb.inbox.begin_turns(Claim(owner="other", lease=timedelta(60)), limit=1)
    assert taken.item.reply_id == ("shown-1" if noted else None)

    replier = RecordingReplier()
    orchestrator = sb.orchestrator
    assert orchestrator is not None
    worker = Worker(inbox=sb.inbox, orchestrator=orchestrator, repliers=sb.repliers,
                    owner="stalled")
    await worker.process(start, replier)

    assert replier.kinds()[-2:] == ["delta", "withdrawn"]
    assert replier.events[-1] == ReplyWithdrawn(kept="shown-1" if noted else None)
    item = await sb.inbox.get(start.item.id)
    assert item is not None and item.status == "processing" and item.lease_owner == "other"
    turns = await sb.conversations.recent_turns(start.conversation.id, 10)
    assert [t.role for t in turns] == ["user"]  # the new owner stores the answer


async def test_a_turn_whose_item_is_taken_over_is_stopped_at_once(
    sb: Switchboard, model: ScriptedChatModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worker could not renew its lease (its database was away) and another took the
    item over while the model was still answering. As soon as a renewal tells it so, it
    stops that answer — rather than go on showing it beside the new owner's — and takes
    back what it showed. The item is the new owner's; nothing is released or failed."""
    model.steps = [[*says("The start of an answer"), STALL]]
    orchestrator = sb.orchestrator
    assert orchestrator is not None
    worker = Worker(inbox=sb.inbox, orchestrator=orchestrator, repliers=sb.repliers,
                    owner="stalled", lease=timedelta(seconds=0.3))
    replier = RecordingReplier()
    renew = sb.inbox.renew

    async def away(*_: object, **__: object) -> set[int]:
        raise StorageError("the database is restarting")

    monkeypatch.setattr(sb.inbox, "renew", away)
    answering = asyncio.create_task(worker.answer_now(Acceptance(message=message("hi")), replier))
    taken: list[TurnStart] = []
    while not taken:  # once the lease has run out
        await asyncio.sleep(0.05)
        taken = await sb.inbox.begin_turns(Claim(owner="other", lease=timedelta(60)), limit=1)
    assert replier.text() == "The start of an answer"
    monkeypatch.setattr(sb.inbox, "renew", renew)  # the database is back

    await asyncio.wait_for(answering, timeout=10)
    assert replier.events[-1] == ReplyWithdrawn(kept=None)
    [start] = taken
    item = await sb.inbox.get(start.item.id)
    assert item is not None and item.status == "processing" and item.lease_owner == "other"
    await worker.aclose()


async def test_a_worker_that_claims_back_its_own_expired_item_does_not_answer_it_twice(
    sb: Switchboard, model: ScriptedChatModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The database was away for longer than the lease while the model answered; back,
    the worker's own claim loop finds the item claimable (its lease ran out) and claims
    it. It is still being answered here: no second answer, no second model request."""
    model.steps = [[*says("The one answer"), STALL]]  # a second request would fail
    orchestrator = sb.orchestrator
    assert orchestrator is not None
    replier = RecordingReplier()
    sb.repliers.register("test", _Fixed(replier))
    worker = Worker(inbox=sb.inbox, orchestrator=orchestrator, repliers=sb.repliers,
                    lease=timedelta(seconds=0.3), poll_interval=0.05)

    async def away(*_: object, **__: object) -> set[int]:
        raise StorageError("the database is restarting")

    monkeypatch.setattr(sb.inbox, "renew", away)
    await sb.inbox.accept(Acceptance(message=message("hi")))
    running = asyncio.create_task(worker.run())
    try:
        while not replier.text():
            await asyncio.sleep(0.02)
        item = await sb.inbox.find(channel="test", tenant="t1", message_id="m1")
        assert item is not None
        while (again := await sb.inbox.get(item.id)) is not None and again.attempts < 2:
            await asyncio.sleep(0.05)  # claimed back, by its own loop, once the lease ran out
        await asyncio.sleep(0.3)  # several more polls
        assert len(model.requests) == 1
        assert replier.kinds().count("failed") == 0 and worker.busy == 1
    finally:
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running
        await worker.aclose()


async def test_work_left_by_a_crashed_process_is_claimed_and_answered(
    sb: Switchboard, model: ScriptedChatModel
) -> None:
    model.steps = [says("Recovered.")]
    await sb.inbox.accept(Acceptance(message=message("are you there?")))
    # A process claimed it and died: its lease has already expired.
    [dead] = await sb.inbox.begin_turns(Claim(owner="dead-process", lease=timedelta(0)), limit=1)
    replier = await answered_by_the_worker(sb)
    assert replier.events[-1].kind == "done"
    item = await sb.inbox.get(dead.item.id)
    assert item is not None and item.status == "done" and item.attempts == 2


async def test_a_message_that_keeps_failing_gets_a_final_apology(
    sb: Switchboard, model: ScriptedChatModel
) -> None:
    await sb.inbox.accept(Acceptance(message=message("cursed")))
    for n in range(3):
        await sb.inbox.begin_turns(Claim(owner=f"dead-{n}", lease=timedelta(0)), limit=1)
    [start] = await sb.inbox.begin_turns(worker_of(sb).claim, limit=1)
    assert isinstance(start, Exhausted)
    replier = RecordingReplier()
    await worker_of(sb).process(start, replier)
    assert replier.kinds() == ["failed"] and model.requests == []
    stored = await sb.inbox.get(start.item.id)
    assert stored is not None and stored.status == "failed"
    outcome = await sb.inbox.accept(Acceptance(message=message("cursed")))
    assert isinstance(outcome, Requeued)


class _Fixed:
    def __init__(self, replier: RecordingReplier) -> None:
        self._replier = replier

    def replier_for(self, item: InboxItem) -> RecordingReplier:
        return self._replier


async def test_the_model_can_search_again_and_cite_what_it_found(
    tmp_path: Path, model: ScriptedChatModel
) -> None:
    from core.knowledge import Passage
    from tests.fakes.knowledge import Document, InMemoryRetriever

    vpn = Passage(id="kb-1", title="IT › Reset your VPN password", text="Use the portal.",
                  url="https://wiki.example.com/vpn")
    secret = Passage(id="kb-2", title="HR › Salaries", text="Salary bands for the VPN team.")
    retriever = InMemoryRetriever(
        [Document(passage=vpn), Document(passage=secret, allowed=frozenset({"someone-else"}))]
    )
    model.steps = [
        calls(("search_knowledge", json.dumps({"query": "VPN password"}))),
        says("Use the portal [1]."),
    ]
    settings = load_settings(data_dir=tmp_path)
    async with bootstrap(settings, model=model, retriever=retriever, stores=in_memory_stores(),
                         open_knowledge=False) as sb:
        replier = await answer(sb, message("vpn?"))

    tool_result = model.requests[1].messages[-1].content
    assert "[1] IT › Reset your VPN password" in tool_result
    assert "Salaries" not in tool_result  # filtered for who will see the answer
    done = replier.events[-1]
    assert isinstance(done, ReplyDone)
    assert [(c.index, c.title, c.url) for c in done.citations] == [
        (1, "IT › Reset your VPN password", "https://wiki.example.com/vpn")
    ]
    assert retriever.queries[-1][1].principals >= {ADA.id, "ada@example.com"}
