"""Stopping an answer while it is written, from any channel and any process.

A stop names the item being answered (a Slack Stop button), or the conversation it is
answered in (the web API, a Slack agent session's stop control). Only the person the
answer is for, or an admin, may stop it. `Inbox.request_stop` marks the item durably, in
one transaction; then the worker answering it is told (`signal`: this process's worker
directly, the others through the deployment's signals), cancels the model call and the
tools that can be cancelled, and stores the answer as far as it got, marked stopped. The
item ends done: a stopped answer is never retried or answered again.

A stop the platform itself reports (Teams tells the bot by refusing its next streaming
update) does not come through here: the channel's replier raises `AnswerStopped`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Literal

from core.inbox import InboxItem
from core.messages import ConversationRef, Sender
from core.ports import ConversationStore, Inbox

log = logging.getLogger(__name__)

NOT_YOURS = "Only the person this answer is for (or an admin) can stop it."
NOTHING_TO_STOP = "There is no answer being written here to stop."


@dataclass(frozen=True, kw_only=True, slots=True)
class Stopping:
    """The stop is recorded; the worker ends the answer within moments."""

    item_id: int
    kind: Literal["stopping"] = "stopping"


@dataclass(frozen=True, kw_only=True, slots=True)
class NothingToStop:
    """No answer is being written there (it ended, or never began)."""

    kind: Literal["nothing"] = "nothing"


@dataclass(frozen=True, kw_only=True, slots=True)
class NotAllowed:
    """Someone else's answer: refused (say `NOT_YOURS`)."""

    kind: Literal["not_allowed"] = "not_allowed"


StopOutcome = Stopping | NothingToStop | NotAllowed


class StopSignal:
    """One answer's stop, as its worker learns of it. While the answer is being written
    (`cancels`), a stop cancels the task writing it: the model call and the tools that
    can be cancelled end at once. Outside that (storing or delivering the finished
    answer), a stop changes nothing: the answer is complete anyway."""

    def __init__(self) -> None:
        self.requested = False
        self._task: asyncio.Task[object] | None = None

    def request(self) -> None:
        if self.requested:
            return
        self.requested = True
        if self._task is not None:
            self._task.cancel()

    @contextlib.contextmanager
    def cancels(self) -> Iterator[None]:
        self._task = asyncio.current_task()
        if self.requested and self._task is not None:
            self._task.cancel()  # stopped before the writing began: it ends at once
        try:
            yield
        finally:
            self._task = None

    def caught(self) -> bool:
        """In an `except CancelledError` around `cancels`: whether the stop (alone) cancelled
        the task — then it is no longer cancelling. A shutdown's cancellation goes on."""
        task = asyncio.current_task()
        return self.requested and task is not None and task.uncancel() == 0


def is_admin(sender: Sender, admins: frozenset[str]) -> bool:
    """`SWITCHBOARD_ADMINS` names people by channel-scoped id (`slack:T1:U2`), verified
    email, or an API key's user (web and terminal senders)."""
    if sender.id in admins or (sender.email is not None and sender.email.lower() in admins):
        return True
    channel = sender.id.split(":", 1)[0]
    return channel in ("web", "cli") and sender.id.rsplit(":", 1)[-1] in admins


class Stopper:
    def __init__(
        self,
        *,
        inbox: Inbox,
        conversations: ConversationStore,
        admins: frozenset[str] = frozenset(),
        signal: Callable[[int], None] = lambda _item_id: None,
    ) -> None:
        """`signal(item_id)`: tell the worker answering the item, wherever it runs."""
        self._inbox = inbox
        self._conversations = conversations
        self._admins = frozenset(a.lower() if "@" in a else a for a in admins)
        self._signal = signal

    def is_admin(self, sender: Sender) -> bool:
        return is_admin(sender, self._admins)

    async def stop_item(self, item_id: int, by: Sender) -> StopOutcome:
        """Stop the answer to one inbox item (the Stop button carries its id)."""
        return await self._stop(await self._inbox.get(item_id), by)

    async def stop_message(self, where: ConversationRef, message_id: str, by: Sender) -> StopOutcome:
        """Stop the answer to one message of `where`'s channel (the terminal knows the
        message it sent, waiting or being answered)."""
        item = await self._inbox.find(channel=where.channel, tenant=where.tenant,
                                      message_id=message_id)
        return await self._stop(item, by)

    async def stop_in(self, conversation_id: str, by: Sender) -> StopOutcome:
        """Stop the answer being written in one of our conversations."""
        return await self._stop(await self._inbox.unfinished_in(conversation_id), by)

    async def stop_thread(self, ref: ConversationRef, by: Sender) -> StopOutcome:
        """Stop the answer being written in a platform thread (a Slack agent session)."""
        conversation = await self._conversations.find(ref)
        if conversation is None:
            return NothingToStop()
        return await self.stop_in(conversation.id, by)

    async def _stop(self, item: InboxItem | None, by: Sender) -> StopOutcome:
        if item is None or item.status not in ("pending", "processing"):
            return NothingToStop()
        if by.id != item.message.sender.id and not is_admin(by, self._admins):
            log.info("refused a stop of inbox item %d by %s (not theirs)", item.id, by.id)
            return NotAllowed()
        stopped = await self._inbox.request_stop(item.id, by=by.id)
        if stopped is None:
            return NothingToStop()
        log.info("inbox item %d: stop requested by %s", item.id, by.id)
        if stopped == "processing":
            self._signal(item.id)
        return Stopping(item_id=item.id)
