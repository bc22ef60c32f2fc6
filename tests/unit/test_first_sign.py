"""The first status of an answer waits a moment and is dropped if the answer starts
first; once going out it always lands before the answer (core/signs.py)."""

from __future__ import annotations

import asyncio

from core.replies import ReplyDone, ReplyEvent, Status, TextDelta
from core.signs import DelayedFirstStatus
from tests.fakes.scripted import RecordingReplier


class GatedReplier(RecordingReplier):
    """Holds every status at a gate, as a slow platform call would."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self.status_arrived = asyncio.Event()

    async def send(self, event: ReplyEvent) -> None:
        if isinstance(event, Status):
            self.status_arrived.set()
            await self.gate.wait()
        await super().send(event)


async def test_an_answer_that_starts_before_the_delay_shows_no_status() -> None:
    inner = RecordingReplier()
    shown = DelayedFirstStatus(inner, delay=3600)
    await shown.send(Status(text="Thinking…"))
    await shown.send(TextDelta(text="Hi"))
    await shown.send(ReplyDone(text="Hi"))
    await shown.settle()
    assert inner.kinds() == ["delta", "done"]


async def test_a_status_being_sent_lands_before_the_answer() -> None:
    inner = GatedReplier()
    shown = DelayedFirstStatus(inner, delay=0.001)
    await shown.send(Status(text="Thinking…"))
    await inner.status_arrived.wait()  # the delay is over and the status is going out
    answer = asyncio.create_task(shown.send(TextDelta(text="Hi")))
    await asyncio.sleep(0)
    assert inner.kinds() == []  # the answer waits for the status
    inner.gate.set()
    await answer
    assert inner.kinds() == ["status", "delta"]


async def test_later_statuses_go_out_at_once() -> None:
    inner = RecordingReplier()
    shown = DelayedFirstStatus(inner, delay=3600)
    await shown.send(Status(text="Thinking…"))
    await shown.send(TextDelta(text="Let me look. "))
    await shown.send(Status(text="Looking up your profile…"))
    assert inner.events == [TextDelta(text="Let me look. "),
                            Status(text="Looking up your profile…")]


async def test_settling_leaves_no_status_behind() -> None:
    inner = RecordingReplier()
    shown = DelayedFirstStatus(inner, delay=3600)
    await shown.send(Status(text="Thinking…"))
    await shown.settle()
    await asyncio.sleep(0)
    assert inner.events == []
