"""The first sign of an answer, in one place for every channel.

An answer's first event is a status ("Thinking…": Slack's assistant status, Teams'
typing or informative update, the web page's status line). For an answer that starts
within `STATUS_DELAY` it would only flash — and cost each platform a call — so the first
status waits that long and is dropped if something visible comes first. Once being sent,
it is awaited before anything else goes out, so it can never land after the answer (a
Slack status would linger). Later statuses (a tool running) go out at once.
"""

from __future__ import annotations

import asyncio
import contextlib

from core.ports import Replier
from core.replies import ReplyEvent, Status

STATUS_DELAY = 0.1  # seconds: under the 300 ms first-sign target, over an instant answer


class DelayedFirstStatus:
    """Wraps the `Replier` of one answer."""

    def __init__(self, replier: Replier, *, delay: float = STATUS_DELAY) -> None:
        self._replier = replier
        self._delay = delay
        self._first: asyncio.Task[None] | None = None
        self._sending = False
        self._started = False

    async def send(self, event: ReplyEvent) -> None:
        if isinstance(event, Status) and not self._started:
            self._started = True
            if self._delay > 0:
                self._first = asyncio.create_task(self._later(event), name="first-status")
                return
        await self.settle()
        self._started = True
        await self._replier.send(event)

    async def _later(self, event: Status) -> None:
        await asyncio.sleep(self._delay)
        self._sending = True
        await self._replier.send(event)

    async def settle(self) -> None:
        """Drop the first status if it is still waiting; wait for it if it is going out.
        Call once the answer is over, so nothing is left behind."""
        first, self._first = self._first, None
        if first is None:
            return
        if not self._sending:
            first.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await first
