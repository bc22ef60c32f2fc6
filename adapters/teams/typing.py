""""Typing…" in the chat as soon as a message is accepted, before a worker takes it.

Under load a message can wait for a worker; the person should still see at once that it
arrived. The indicator is cosmetic, so it is sent from a task this object owns, at most
`limit` at a time (beyond that it is skipped), and a failure is only logged.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from botbuilder.schema import Activity

from adapters.teams.replier import Sender, SendError

log = logging.getLogger(__name__)


class EarlyTyping:
    def __init__(self, sender_for: Callable[[dict[str, Any]], Sender], *, limit: int = 64) -> None:
        self._sender_for = sender_for
        self._limit = limit
        self._tasks: set[asyncio.Task[None]] = set()

    def start(self, reference: dict[str, Any]) -> None:
        if len(self._tasks) >= self._limit:
            return
        task = asyncio.create_task(self._typing(reference), name="teams-early-typing")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _typing(self, reference: dict[str, Any]) -> None:
        try:
            await self._sender_for(reference)(Activity(type="typing"))
        except SendError as e:
            log.info("could not show typing on arrival: %s", type(e).__name__)

    async def aclose(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
