"""The inbox worker: claims messages, answers them under a lease, never goes silent.

Every claimed item ends in one of three ways: done (answered), failed (the person got a
short apology; a redelivery retries it), or released (shutdown; another worker takes it).
A process that dies leaves its items under a lease that expires, and they are claimed
again — at start-up or by any other process polling the same inbox.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Mapping
from datetime import timedelta

from core.errors import SwitchboardError
from core.inbox import Duplicate, InboxItem, Recorded, RecordOutcome, Requeued
from core.messages import InboundMessage
from core.orchestrator import Orchestrator
from core.ports import Inbox, Replier, ReplierFactory
from core.replies import ReplyEvent, ReplyFailed

log = logging.getLogger(__name__)

GAVE_UP = "Sorry, I couldn't answer this message after several attempts. Please send it again."


class ChannelRepliers:
    """Picks the replier factory of the channel a message came from."""

    def __init__(self, factories: Mapping[str, ReplierFactory]) -> None:
        self._factories = dict(factories)

    def register(self, channel: str, factory: ReplierFactory) -> None:
        self._factories[channel] = factory

    def replier_for(self, item: InboxItem) -> Replier:
        factory = self._factories.get(item.message.conversation.channel)
        if factory is None:
            return _UnroutableReplier(item.message.conversation.channel)
        return factory.replier_for(item)


class _UnroutableReplier:
    def __init__(self, channel: str) -> None:
        self._channel = channel

    async def send(self, event: ReplyEvent) -> None:
        log.warning("no %s channel is configured to deliver a %s event", self._channel, event.kind)


class Worker:
    def __init__(
        self,
        *,
        inbox: Inbox,
        orchestrator: Orchestrator,
        repliers: ReplierFactory,
        owner: str | None = None,
        concurrency: int = 16,
        lease: timedelta = timedelta(seconds=60),
        poll_interval: float = 1.0,
        max_attempts: int = 3,
    ) -> None:
        self._inbox = inbox
        self._orchestrator = orchestrator
        self._repliers = repliers
        self.owner = owner or f"worker-{uuid.uuid4().hex[:12]}"
        self.lease = lease
        self._slots = asyncio.Semaphore(concurrency)
        self._concurrency = concurrency
        self._busy = 0
        self._poll_interval = poll_interval
        self._max_attempts = max_attempts
        self._wake = asyncio.Event()

    def notify(self) -> None:
        """A message was recorded in this process: look now rather than at the next poll."""
        self._wake.set()

    async def run(self) -> None:
        """Claim and answer until cancelled. Items left by a crashed process are claimed
        here as soon as their lease has expired."""
        async with asyncio.TaskGroup() as tasks:
            while True:
                self._wake.clear()
                free = self._concurrency - self._busy
                claimed: list[InboxItem] = []
                if free > 0:
                    try:
                        claimed = await self._inbox.claim(owner=self.owner, lease=self.lease, limit=free)
                    except Exception:
                        log.exception("could not claim from the inbox; retrying")
                for item in claimed:
                    self._busy += 1
                    tasks.create_task(self._process_claimed(item))
                if len(claimed) < free or free == 0:
                    try:
                        async with asyncio.timeout(self._poll_interval):
                            await self._wake.wait()
                    except TimeoutError:
                        pass

    async def _process_claimed(self, item: InboxItem) -> None:
        try:
            await self.process(item, self._repliers.replier_for(item))
        finally:
            self._busy -= 1
            self._wake.set()

    async def answer_now(self, message: InboundMessage, replier: Replier) -> RecordOutcome:
        """Record a message claimed by this worker and answer it in the caller's task, for
        channels that answer within the request (web API, terminal). A duplicate is not
        answered again; the caller decides what to show for it."""
        outcome = await self._inbox.record(message, owner=self.owner, lease=self.lease)
        match outcome:
            case Recorded(item=item) | Requeued(item=item):
                await self.process(item, replier)
            case Duplicate():
                pass
        return outcome

    async def process(self, item: InboxItem, replier: Replier) -> None:
        """Answer one claimed item and settle it. Never raises except on cancellation."""
        async with self._slots:
            if item.attempts > self._max_attempts:
                await self._give_up(item, replier)
                return
            keeper = asyncio.create_task(self._keep_lease(item.id))
            try:
                await self._orchestrator.answer(item, replier)
            except asyncio.CancelledError:
                await asyncio.shield(self._settle(self._inbox.release(item.id, owner=self.owner)))
                raise
            except Exception as e:
                await self._apologise(item, replier, e)
            else:
                await self._settle(self._inbox.complete(item.id, owner=self.owner))
            finally:
                keeper.cancel()

    async def _apologise(self, item: InboxItem, replier: Replier, error: Exception) -> None:
        reference = uuid.uuid4().hex[:8]
        log.error(
            "answering message %s (%s, inbox item %d, attempt %d) failed, reference %s",
            item.message.id,
            item.message.conversation.channel,
            item.id,
            item.attempts,
            reference,
            exc_info=error,
        )
        text = error.user_message if isinstance(error, SwitchboardError) else SwitchboardError.user_message
        await self._fail(item, replier, ReplyFailed(text=text, reference=reference),
                         error=f"{type(error).__name__} ({reference})")

    async def _give_up(self, item: InboxItem, replier: Replier) -> None:
        log.error("message %s failed %d times; giving up", item.message.id, item.attempts - 1)
        apology = ReplyFailed(text=GAVE_UP, reference=f"item-{item.id}")
        await self._fail(item, replier, apology, error="too many attempts")

    async def _fail(self, item: InboxItem, replier: Replier, apology: ReplyFailed, *, error: str) -> None:
        """Tell the person (never silent), then mark the item failed: retried on redelivery."""
        try:
            await replier.send(apology)
        except Exception:
            log.exception("could not deliver the apology for message %s", item.message.id)
        await self._settle(self._inbox.fail(item.id, owner=self.owner, error=error))

    async def _settle(self, update: Awaitable[None]) -> None:
        try:
            await update
        except Exception:
            # The lease will expire and the item be claimed again; that is the safe side.
            log.exception("could not update the inbox")

    async def _keep_lease(self, item_id: int) -> None:
        interval = self.lease.total_seconds() / 3
        while True:
            await asyncio.sleep(interval)
            try:
                if not await self._inbox.renew(item_id, owner=self.owner, lease=self.lease):
                    log.warning("lost the lease on inbox item %d", item_id)
                    return
            except Exception:
                log.exception("could not renew the lease on inbox item %d", item_id)
