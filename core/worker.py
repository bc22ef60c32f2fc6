"""The inbox worker: claims messages, answers them under a lease, never goes silent.

Every claimed item ends in one of three ways: done (answered: `finish_turn` marks it in
the transaction that stores the answer), failed (the person got a short apology; a
redelivery retries it), or released (shutdown; another worker takes it). A process that
dies leaves its items under a lease that expires, and they are claimed again — at
start-up or by any other worker on the same inbox. A process that only stalled (or lost
the database) past its lease finds its item taken over: it stops that answer as soon as
it learns so, stores nothing, and takes back what it showed (`ReplyWithdrawn`).

A turn is almost all waiting on the model, so the number of turns in flight is bounded by
`concurrency` (hundreds), not by CPU slots; the model's own rate limit is the model
adapter's to keep.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import uuid
from collections.abc import Awaitable, Mapping
from dataclasses import replace
from datetime import timedelta
from typing import Any

from core.errors import StorageError, SwitchboardError
from core.inbox import (
    Acceptance,
    Answered,
    Claim,
    Duplicate,
    Exhausted,
    InboxItem,
    LeaseLost,
    NotFollowed,
    NotYours,
    Recorded,
    Requeued,
    Started,
    TurnStart,
)
from core.log_fields import log_fields
from core.orchestrator import AnswerUndelivered, Orchestrator
from core.ports import Inbox, MessageOutcome, Replier, ReplierFactory, Telemetry
from core.replies import ReplyEvent, ReplyFailed, ReplyWithdrawn
from core.signs import DelayedFirstStatus
from core.stops import StopSignal
from core.telemetry import NO_TELEMETRY, FirstSigns

log = logging.getLogger(__name__)

GAVE_UP = "Sorry, I couldn't answer this message after several attempts. Please send it again."
CLAIM_BATCH = 32  # items started per transaction when many are waiting


def _reason(error: Exception) -> str:
    """Why an answer failed, for the apology count: the kind of our error (model_timeout,
    no_answer, storage_error…), or "error" for anything unforeseen."""
    if not isinstance(error, SwitchboardError):
        return "error"
    return re.sub(r"(?<!^)(?=[A-Z])", "_", type(error).__name__).lower()


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
        concurrency: int = 256,
        lease: timedelta = timedelta(seconds=60),
        poll_interval: float = 1.0,
        telemetry: Telemetry = NO_TELEMETRY,
    ) -> None:
        self._inbox = inbox
        self._telemetry = telemetry
        self._orchestrator = orchestrator
        self._repliers = repliers
        self.owner = owner or f"worker-{uuid.uuid4().hex[:12]}"
        self.claim = Claim(owner=self.owner, lease=lease)
        self._concurrency = concurrency
        self._poll_interval = poll_interval
        self._held: set[int] = set()  # items this worker is answering
        self._turns: dict[int, asyncio.Task[Any]] = {}  # the task answering each item
        self._stops: dict[int, StopSignal] = {}  # how to stop each answer being written
        self._taken: set[int] = set()  # items another worker took over, their turns stopped
        self._keeper: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._draining = False
        self._running = False
        self._stopped = asyncio.Event()

    @property
    def busy(self) -> int:
        return len(self._held)

    def stop(self, item_id: int) -> bool:
        """Someone stopped the answer to `item_id` (the stop is recorded in the inbox): if
        this worker is writing it, it ends it now. Whether it was here."""
        signal = self._stops.get(item_id)
        if signal is None:
            return False
        signal.request()
        return True

    def notify(self) -> None:
        """There may be new work (recorded in this process, or signalled by another):
        look now rather than at the next poll."""
        self._wake.set()

    async def drain(self) -> None:
        """Claim nothing more, and return once every answer in progress has ended (`run`
        returns then too). Cancel `run` to stop sooner: its answers release their items."""
        self._draining = True
        self._wake.set()
        if self._running:
            await self._stopped.wait()

    async def run(self) -> None:
        """Claim and answer until cancelled or drained. Items left by a crashed process are
        claimed here as soon as their lease has expired."""
        self._running = True
        try:
            await self._claim_and_answer()
        finally:
            self._running = False
            self._stopped.set()

    async def _claim_and_answer(self) -> None:
        async with asyncio.TaskGroup() as tasks:  # on leaving: waits for every answer
            while not self._draining:
                self._wake.clear()
                free = self._concurrency - len(self._held)
                starts: list[TurnStart] = []
                if free > 0:
                    try:
                        starts = await self._inbox.begin_turns(
                            self.claim, limit=min(free, CLAIM_BATCH)
                        )
                    except StorageError as e:  # the database is away: one line a poll
                        log.warning("could not claim from the inbox (%s); retrying", e)
                    except Exception:
                        log.exception("could not claim from the inbox; retrying")
                for start in starts:
                    if start.item.id in self._held:
                        # Its lease ran out while the database was away, and this worker
                        # claimed it back: it is still being answered here (the claim only
                        # renewed the lease), never a second time beside itself.
                        continue
                    self._hold(start.item.id)
                    tasks.create_task(self._answer_claimed(start))
                if free > 0 and len(starts) == min(free, CLAIM_BATCH):
                    continue  # more may be waiting
                try:
                    async with asyncio.timeout(self._poll_interval):
                        await self._wake.wait()
                except TimeoutError:
                    pass

    async def _answer_claimed(self, start: TurnStart) -> None:
        try:
            await self.process(start, self._repliers.replier_for(start.item))
        finally:
            full = len(self._held) >= self._concurrency
            self._held.discard(start.item.id)
            if full:  # a slot opened: look for waiting work (else new work wakes us)
                self._wake.set()

    def _hold(self, item_id: int) -> None:
        self._held.add(item_id)
        if self._keeper is None or self._keeper.done():
            self._keeper = asyncio.create_task(self._keep_leases(), name="lease-keeper")

    async def aclose(self) -> None:
        """Stop renewing leases (after the turns have ended or been cancelled)."""
        if self._keeper is not None:
            self._keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._keeper

    async def answer_now(
        self, acceptance: Acceptance, replier: Replier
    ) -> Recorded | Requeued | Duplicate:
        """Record a message claimed by this worker and answer it in the caller's task (the
        terminal answers its own messages). A duplicate is not answered again; the caller
        decides what to show for it."""
        outcome = await self._inbox.accept(replace(acceptance, claim=self.claim))
        match outcome:
            case Recorded(item=item) | Requeued(item=item):
                start = await self._inbox.begin_turn(item.id, self.claim)
                if start is not None:
                    self._hold(item.id)
                    try:
                        await self.process(start, replier)
                    finally:
                        self._held.discard(item.id)
                return outcome
            case Duplicate():
                return outcome
            case NotFollowed() | NotYours():
                raise ValueError(f"answer_now cannot answer a message that is {outcome.kind}")

    async def process(self, start: TurnStart, replier: Replier) -> None:
        """Answer one claimed item and settle it. Never raises except on cancellation."""
        message = start.item.message
        conversation = start.conversation.id if isinstance(start, Started) else None
        with log_fields(channel=message.conversation.channel, message_id=message.id,
                        inbox_item_id=start.item.id, conversation_id=conversation):
            await self._process(start, FirstSigns(replier, message, self._telemetry))

    async def _process(self, start: TurnStart, replier: Replier) -> None:
        item = start.item
        shown = DelayedFirstStatus(replier)
        if (task := asyncio.current_task()) is not None:
            self._turns[item.id] = task
        stop = self._stops[item.id] = StopSignal()
        outcome: MessageOutcome = "answered"
        detail = ""
        try:
            match start:
                case Exhausted():
                    outcome, detail = "apologised", "gave_up"
                    await self._give_up(item, shown)
                case Answered():
                    await self._orchestrator.redeliver(start, shown, owner=self.owner)
                case Started():
                    done = await self._orchestrator.answer(start, shown, owner=self.owner,
                                                           stop=stop)
                    if done.stopped:
                        outcome = "stopped"
        except asyncio.CancelledError:
            if self._stopped_as_taken(item.id):
                outcome = "withdrawn"
                await self._withdraw(item, shown)
                return
            outcome = "released"
            await asyncio.shield(self._settle(self._inbox.release(item.id, owner=self.owner)))
            raise
        except LeaseLost:
            outcome = "withdrawn"
            # The lease keeper may learn the same a moment later: marked taken, it leaves
            # this turn to take back what it showed instead of cancelling it mid-way.
            self._taken.add(item.id)
            log.warning("inbox item %d was taken over by another worker; it answers", item.id)
            await self._withdraw(item, shown)
        except AnswerUndelivered as e:
            # Stored, and the channel refused it (not a crash): apologise, and the item is
            # done; delivering it again would likely fail the same way, or repeat it.
            outcome, detail = "apologised", "undelivered"
            await self._tell(item, shown, e, settle=False)
            await self._settle(self._inbox.finish_delivery(item.id, owner=self.owner))
        except Exception as e:
            outcome, detail = "apologised", _reason(e)
            await self._tell(item, shown, e, settle=True)
        finally:
            self._turns.pop(item.id, None)
            self._stops.pop(item.id, None)
            self._taken.discard(item.id)
            await shown.settle()
            self._telemetry.message(item.message.conversation.channel, outcome, detail=detail)

    def _stop_taken(self, item_id: int) -> None:
        """Another worker took this item over (this one could not renew its lease in
        time): stop answering it now, rather than go on showing a second answer."""
        turn = self._turns.get(item_id)
        if turn is None or item_id in self._taken:
            return
        log.warning("inbox item %d was taken over by another worker; stopping", item_id)
        self._taken.add(item_id)
        turn.cancel()

    def _stopped_as_taken(self, item_id: int) -> bool:
        """The turn was cancelled by `_stop_taken` alone (not also by a shutdown)."""
        task = asyncio.current_task()
        return item_id in self._taken and task is not None and task.uncancel() == 0

    async def _tell(
        self, item: InboxItem, replier: Replier, error: Exception, *, settle: bool
    ) -> None:
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
        cause = error.__cause__ if isinstance(error, AnswerUndelivered) else error
        text = cause.user_message if isinstance(cause, SwitchboardError) else SwitchboardError.user_message
        apology = ReplyFailed(text=text, reference=reference)
        await self._fail(item, replier, apology, error=f"{type(error).__name__} ({reference})",
                         settle=settle)

    async def _withdraw(self, item: InboxItem, replier: Replier) -> None:
        """What this attempt showed is taken back, unless the new owner finishes it: it
        was noted before the takeover (notes land only while the item is held)."""
        try:
            now = await self._inbox.get(item.id)
            await replier.send(ReplyWithdrawn(kept=now.reply_id if now is not None else None))
        except Exception:
            log.exception("could not take back what inbox item %d showed", item.id)

    async def _give_up(self, item: InboxItem, replier: Replier) -> None:
        log.error("message %s failed %d times; giving up", item.message.id, item.attempts - 1)
        apology = ReplyFailed(text=GAVE_UP, reference=f"item-{item.id}")
        await self._fail(item, replier, apology, error="too many attempts", settle=True)

    async def _fail(
        self, item: InboxItem, replier: Replier, apology: ReplyFailed, *, error: str,
        settle: bool,
    ) -> None:
        """Tell the person (never silent), then mark the item failed: retried on redelivery."""
        try:
            await replier.send(apology)
        except Exception:
            log.exception("could not deliver the apology for message %s", item.message.id)
        if settle:
            await self._settle(self._inbox.fail(item.id, owner=self.owner, error=error))

    async def _settle(self, update: Awaitable[bool]) -> None:
        try:
            await update
        except StorageError as e:
            # The lease will expire and the item be claimed again; that is the safe side.
            log.warning("could not update the inbox (%s)", e)
        except Exception:
            log.exception("could not update the inbox")

    async def _keep_leases(self) -> None:
        """One renewal for every item held, every third of the lease: a turn that waits
        on a slow model keeps its item, and a dead process's items expire."""
        interval = self.claim.lease.total_seconds() / 3
        while True:
            await asyncio.sleep(interval)
            held = sorted(self._held)
            if not held:
                continue
            try:
                renewed = await self._inbox.renew(held, self.claim)
                # A stop whose signal was lost (a full socket queue, a dropped LISTEN
                # connection) is recorded all the same: found here, a little later.
                stopped = await self._inbox.stopped_among(sorted(renewed)) if renewed else set()
                for item_id in stopped:
                    self.stop(item_id)
                for item_id in {i for i in held if i in self._held} - renewed:
                    # Not renewed: stored and done already (its answer is being delivered),
                    # or taken over by another worker after this one stalled past the lease.
                    item = await self._inbox.get(item_id)
                    if item is None or item.status == "done":
                        continue
                    if item.taken_from(self.owner):
                        self._stop_taken(item_id)
                    else:
                        log.warning("lost the lease on inbox item %d", item_id)
            except StorageError as e:
                log.warning("could not renew the leases of %d inbox items (%s)", len(held), e)
            except Exception:
                log.exception("could not renew the leases of %d inbox items", len(held))
