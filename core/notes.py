"""Which platform message shows an answer, kept durably while the answer goes on.

A channel notes the message it opens for an answer (a Slack stream's ts, a Teams stream
or message id) as soon as it exists, so that a retry after a crash finishes that message
instead of sending a second. The note never holds up the answer: it is written in the
background, tried again while the database is away (a restart, a failover) for up to
`core.inbox.STORE_PATIENCE`, and only the end of the answer waits for it (`NOTE_WAIT`):
the answer is stored by then, and a retry must find the message to finish.

A note lands only while this worker holds the item, even past its lease. Once another
worker has taken the item over, what this attempt showed is not noted, so nobody would
finish it: this attempt takes it back (`ReplyWithdrawn`) unless the new owner finishes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Protocol

from core.errors import StorageError
from core.inbox import InboxItem, patiently

log = logging.getLogger(__name__)

NOTE_WAIT = 5.0  # seconds the end of an answer waits for its message to be noted


class NoteStore(Protocol):
    """What of the `Inbox` a note uses."""

    async def note_reply(self, item_id: int, reply_id: str, *, owner: str) -> bool: ...

    async def get(self, item_id: int) -> InboxItem | None: ...


_WRITING: set[asyncio.Future[None]] = set()  # notes being written (kept from the collector)


class ReplyNote:
    """The note of the message showing one item's answer."""

    def __init__(self, store: NoteStore, item: InboxItem) -> None:
        self._store = store
        self._item = item.id
        self._owner = item.lease_owner
        self._writing: asyncio.Future[None] | None = None

    def remember(self, reply_id: str) -> None:
        """Note `reply_id` in the background, after any note before it."""
        if self._owner is None:
            return
        self._writing = asyncio.ensure_future(self._write(reply_id, after=self._writing))
        _WRITING.add(self._writing)
        self._writing.add_done_callback(_WRITING.discard)

    async def settled(self) -> None:
        """Wait (at most NOTE_WAIT seconds) until the notes so far are written or given up."""
        if self._writing is not None and not self._writing.done():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._writing), NOTE_WAIT)

    async def taken_over(self) -> bool:
        """Whether another worker holds the item now (it was noted, and the new owner
        finishes the message: this attempt must leave it alone)."""
        try:
            item = await self._store.get(self._item)
        except StorageError:
            return False
        return item is not None and item.taken_from(self._owner)

    async def _write(self, reply_id: str, *, after: asyncio.Future[None] | None) -> None:
        if after is not None:
            await asyncio.wait([after])
        assert self._owner is not None
        owner = self._owner
        try:
            kept = await patiently(
                lambda: self._store.note_reply(self._item, reply_id, owner=owner),
                what=f"the message showing the answer to inbox item {self._item}",
            )
        except StorageError as e:  # the database is away (and says so elsewhere): one line
            log.warning("could not note the message showing the answer to inbox item %d (%s)",
                        self._item, e)
        except Exception:  # never worth the answer
            log.exception("could not note the message showing the answer to inbox item %d",
                          self._item)
        else:
            if not kept:
                log.info("the message showing the answer to inbox item %d was not noted: "
                         "the item is no longer this worker's", self._item)
