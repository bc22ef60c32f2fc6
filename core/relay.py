"""Answers for requests that wait in this process (a web request, the terminal), from
whichever process answers them.

A waiting request registers its message's key here *before* the message is accepted, and
the message carries this process's `address` (`reply_to`). The worker that answers — in
this process or another — asks `replier(address, key)` for where to send the events: in
this process they go straight to the waiting queue; elsewhere through the transport
(a Unix socket on one machine, PostgreSQL's NOTIFY across machines). A request that is
gone by then loses nothing: the answer is stored in its conversation either way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator
from typing import Protocol

from core.inbox import InboxItem
from core.ports import Replier
from core.replies import ReplyEvent, ReplyFailed

log = logging.getLogger(__name__)

REPLY_TO = "reply_to"  # the key in a message's channel_data


class RelayTransport(Protocol):
    """Carries events to a waiting request in another process."""

    @property
    def address(self) -> str:
        """Where other processes reach this one."""
        ...

    def replier(self, address: str, key: str) -> Replier:
        """Sends the events for `key` to the process at `address`."""
        ...


class ReplyRelay:
    def __init__(self, transport: RelayTransport | None = None) -> None:
        self._transport = transport
        self.address = transport.address if transport else f"local:{uuid.uuid4().hex}"
        self._waiting: dict[str, list[asyncio.Queue[ReplyEvent]]] = {}

    @contextlib.asynccontextmanager
    async def waiting(self, key: str) -> AsyncIterator[asyncio.Queue[ReplyEvent]]:
        """Receive the events answering message `key` while inside this block. A request
        retried while the first still waits (a client reconnecting) waits beside it: each
        gets every event from the moment it registers."""
        queue: asyncio.Queue[ReplyEvent] = asyncio.Queue()
        self._waiting.setdefault(key, []).append(queue)
        try:
            yield queue
        finally:
            queues = self._waiting[key]
            queues.remove(queue)
            if not queues:
                del self._waiting[key]

    def deliver(self, key: str, event: ReplyEvent) -> None:
        """An event for the requests waiting here (from this process or the transport)."""
        for queue in self._waiting.get(key, ()):
            queue.put_nowait(event)

    def replier_for(self, item: InboxItem) -> Replier:
        """The replier for a web or terminal message (the `ReplierFactory` of those
        channels): back to the process where its request waits."""
        return self.replier(item.message.channel_data.get(REPLY_TO), item.message.id)

    def replier(self, address: str | None, key: str) -> Replier:
        if address == self.address:
            return _Local(self, key)
        if address and self._transport is not None and not address.startswith("local:"):
            return self._transport.replier(address, key)
        return _Stored()


FIRST_EVENT_SECONDS = 60.0  # for a worker to start on the message
NEXT_EVENT_SECONDS = 300.0  # between two events of an answer (a long tool, a slow model)
NO_WORKER = (
    "Sorry, nobody could start on your message just now. It is kept, and the answer will "
    "appear in this conversation."
)


async def pass_on(events: asyncio.Queue[ReplyEvent], replier: Replier) -> None:
    """Pass a waiting request's events on until its answer is done or failed. If no
    worker starts on it in time, say so: the message is kept and its answer will land in
    the conversation."""
    timeout = FIRST_EVENT_SECONDS
    while True:
        try:
            event = await asyncio.wait_for(events.get(), timeout)
        except TimeoutError:
            await replier.send(ReplyFailed(text=NO_WORKER, reference="no-worker"))
            return
        await replier.send(event)
        if event.kind in ("done", "failed"):
            return
        timeout = NEXT_EVENT_SECONDS


class _Local:
    def __init__(self, relay: ReplyRelay, key: str) -> None:
        self._relay = relay
        self._key = key

    async def send(self, event: ReplyEvent) -> None:
        self._relay.deliver(self._key, event)


class _Stored:
    """Nobody waits where the message came from (a restart, another host without a
    transport): the answer lands in the conversation's history only."""

    async def send(self, event: ReplyEvent) -> None:
        if event.kind == "failed":
            log.warning("a web or terminal message with nobody waiting failed again")
