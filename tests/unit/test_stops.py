"""Stopping an answer: the worker ends it where it was, stores it marked stopped, and the
item is done — never retried; only the person it is for (or an admin) may stop it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bots.bootstrap import Switchboard, bootstrap
from bots.settings import load_settings
from core.errors import AnswerStopped
from core.inbox import Acceptance, Claim, Recorded, Started
from core.messages import ConversationRef, InboundMessage, Sender
from core.replies import STOPPED_MARK, ReplyDone, ReplyEvent, TextDelta
from core.stops import NotAllowed, NothingToStop, Stopper, Stopping
from core.tools.registry import ToolContext, ToolRegistry, tool
from core.worker import Worker
from tests.fakes.scripted import STALL, RecordingReplier, ScriptedChatModel, calls, says
from tests.fakes.stores import in_memory_stores

ADA = Sender(id="test:t1:ada", name="Ada Lovelace", email="ada@example.com")
BOB = Sender(id="test:t1:bob", name="Bob")
ROOT = Sender(id="test:t1:root", name="Root", email="Root@Example.com")


def message(text: str, *, mid: str = "m1") -> InboundMessage:
    return InboundMessage(
        id=mid,
        conversation=ConversationRef(channel="test", tenant="t1", conversation="dm", thread="th"),
        sender=ADA, text=text, sent_at=datetime.now(UTC), is_direct=True,
    )


class Watching(RecordingReplier):
    """Records events, and says when the first text arrived."""

    def __init__(self) -> None:
        super().__init__()
        self.writing = asyncio.Event()

    async def send(self, event: ReplyEvent) -> None:
        await super().send(event)
        if isinstance(event, TextDelta):
            self.writing.set()


class _Fixed:
    def __init__(self, replier: RecordingReplier) -> None:
        self._replier = replier

    def replier_for(self, _item: object) -> RecordingReplier:
        return self._replier


@pytest.fixture
def model() -> ScriptedChatModel:
    return ScriptedChatModel()


@pytest.fixture
async def sb(tmp_path: Path, model: ScriptedChatModel) -> AsyncIterator[Switchboard]:
    settings = load_settings(data_dir=tmp_path, admins="root@example.com")
    async with bootstrap(
        settings, model=model, stores=in_memory_stores(), open_knowledge=False
    ) as services:
        yield services


def worker_of(sb: Switchboard) -> Worker:
    assert sb.worker is not None
    return sb.worker


async def writing(sb: Switchboard, replier: Watching) -> tuple[asyncio.Task[object], str]:
    """The worker answering `message("hi")`, once its first text is shown; and the
    conversation's id."""
    sb.repliers.register("test", _Fixed(replier))
    outcome = await sb.inbox.accept(Acceptance(message=message("hi")))
    assert isinstance(outcome, Recorded)
    task = asyncio.create_task(worker_of(sb).run())
    await asyncio.wait_for(replier.writing.wait(), 10)
    conversation = await sb.conversations.latest(channel="test", owner=ADA.id)
    assert conversation is not None
    return task, conversation.id


async def test_a_stop_ends_the_answer_where_it_was_and_keeps_it(
    sb: Switchboard, model: ScriptedChatModel
) -> None:
    model.steps = [[*says("Hello, I am "), STALL]]
    replier = Watching()
    task, conversation = await writing(sb, replier)
    try:
        outcome = await sb.stopper.stop_in(conversation, ADA)
        assert isinstance(outcome, Stopping)
        await asyncio.wait_for(replier.finished.wait(), 10)
    finally:
        task.cancel()
    done = replier.events[-1]
    assert isinstance(done, ReplyDone) and done.stopped and not done.feedback
    assert done.text == f"Hello, I am \n\n{STOPPED_MARK}"
    turns = await sb.conversations.recent_turns(conversation, 10)
    assert [(t.role, t.content) for t in turns] == [
        ("user", "hi"), ("assistant", f"Hello, I am \n\n{STOPPED_MARK}")]
    item = await sb.inbox.get(outcome.item_id)
    assert item is not None and item.status == "done" and item.stopped_by == ADA.id
    # Delivered again, it is a duplicate of a done item: never answered a second time.
    again = await sb.inbox.accept(Acceptance(message=message("hi")))
    assert again.kind == "duplicate"
    assert len(model.requests) == 1


async def test_someone_else_cannot_stop_the_answer_but_an_admin_can(
    sb: Switchboard, model: ScriptedChatModel
) -> None:
    model.steps = [[*says("Working on it"), STALL]]
    replier = Watching()
    task, conversation = await writing(sb, replier)
    try:
        assert isinstance(await sb.stopper.stop_in(conversation, BOB), NotAllowed)
        assert not replier.finished.is_set()
        assert isinstance(await sb.stopper.stop_in(conversation, ROOT), Stopping)
        await asyncio.wait_for(replier.finished.wait(), 10)
    finally:
        task.cancel()
    done = replier.events[-1]
    assert isinstance(done, ReplyDone) and done.stopped
    assert isinstance(await sb.stopper.stop_in(conversation, ADA), NothingToStop)


async def test_a_message_stopped_before_anyone_started_on_it_is_never_answered(
    sb: Switchboard, model: ScriptedChatModel
) -> None:
    outcome = await sb.inbox.accept(Acceptance(message=message("hi")))
    assert isinstance(outcome, Recorded)
    assert isinstance(await sb.stopper.stop_item(outcome.item.id, ADA), Stopping)
    item = await sb.inbox.get(outcome.item.id)
    assert item is not None and item.status == "done"
    assert await sb.inbox.begin_turns(worker_of(sb).claim, limit=10) == []
    assert model.requests == []


async def test_a_stopped_answer_whose_worker_died_is_ended_not_answered_again(
    sb: Switchboard, model: ScriptedChatModel
) -> None:
    dead = Claim(owner="dead-worker", lease=timedelta(0))
    outcome = await sb.inbox.accept(Acceptance(message=message("hi"), claim=dead))
    assert isinstance(outcome, Recorded)
    assert isinstance(await sb.inbox.begin_turn(outcome.item.id, dead), Started)
    assert isinstance(await sb.stopper.stop_item(outcome.item.id, ADA), Stopping)
    replier = Watching()
    sb.repliers.register("test", _Fixed(replier))
    task = asyncio.create_task(worker_of(sb).run())
    try:
        await asyncio.wait_for(replier.finished.wait(), 10)
    finally:
        task.cancel()
    done = replier.events[-1]
    assert isinstance(done, ReplyDone) and done.stopped and done.text == STOPPED_MARK
    assert model.requests == []
    item = await sb.inbox.get(outcome.item.id)
    assert item is not None and item.status == "done"


class StoppedOnPlatform(Watching):
    """Teams-like: the platform refuses the next update once the person pressed Stop."""

    async def send(self, event: ReplyEvent) -> None:
        if isinstance(event, TextDelta) and self.writing.is_set():
            raise AnswerStopped()
        await super().send(event)


async def test_a_stop_the_platform_reports_ends_the_answer_as_stopped(
    sb: Switchboard, model: ScriptedChatModel
) -> None:
    model.steps = [says("First part. ", "Second part.")]
    replier = StoppedOnPlatform()
    await worker_of(sb).answer_now(Acceptance(message=message("hi")), replier)
    done = replier.events[-1]
    assert isinstance(done, ReplyDone) and done.stopped
    conversation = await sb.conversations.latest(channel="test", owner=ADA.id)
    assert conversation is not None
    turns = await sb.conversations.recent_turns(conversation.id, 10)
    assert turns[-1].content.startswith("First part. Second part.")
    assert turns[-1].content.endswith(STOPPED_MARK)


async def test_a_tool_that_writes_runs_to_its_end_when_the_answer_is_stopped(
    tmp_path: Path,
) -> None:
    started, release, finished = asyncio.Event(), asyncio.Event(), asyncio.Event()

    @tool(title="Filing", cancellable=False)
    async def file_it(ctx: ToolContext) -> str:
        """File the thing."""
        started.set()
        await release.wait()
        finished.set()
        return "filed"

    model = ScriptedChatModel([calls(("file_it", "{}")), says("never said")])
    settings = load_settings(data_dir=tmp_path)
    async with bootstrap(settings, model=model, stores=in_memory_stores(),
                         open_knowledge=False) as sb:
        assert sb.orchestrator is not None
        sb.orchestrator._tools = ToolRegistry([file_it])
        replier = Watching()
        sb.repliers.register("test", _Fixed(replier))
        outcome = await sb.inbox.accept(Acceptance(message=message("file it")))
        assert isinstance(outcome, Recorded)
        task = asyncio.create_task(worker_of(sb).run())
        try:
            await asyncio.wait_for(started.wait(), 10)
            assert isinstance(await sb.stopper.stop_item(outcome.item.id, ADA), Stopping)
            await asyncio.sleep(0)  # the stop is delivered; the tool is still running
            assert not replier.finished.is_set()
            release.set()
            await asyncio.wait_for(replier.finished.wait(), 10)
        finally:
            task.cancel()
        assert finished.is_set()
        done = replier.events[-1]
        assert isinstance(done, ReplyDone) and done.stopped


async def test_a_stop_whose_signal_was_lost_is_found_when_the_lease_is_renewed(
    tmp_path: Path, model: ScriptedChatModel
) -> None:
    """The stop is recorded before it is signalled: the worker renewing its lease finds it."""
    settings = load_settings(data_dir=tmp_path, lease_seconds=3)
    async with bootstrap(settings, model=model, stores=in_memory_stores(),
                         open_knowledge=False) as sb:
        model.steps = [[*says("Still going"), STALL]]
        replier = Watching()
        task, conversation = await writing(sb, replier)
        lost = Stopper(inbox=sb.inbox, conversations=sb.conversations)  # signals nobody
        try:
            assert isinstance(await lost.stop_in(conversation, ADA), Stopping)
            await asyncio.wait_for(replier.finished.wait(), 10)  # within a third of a lease
        finally:
            task.cancel()
        done = replier.events[-1]
        assert isinstance(done, ReplyDone) and done.stopped
