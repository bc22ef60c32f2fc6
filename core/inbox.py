"""The durable inbox and the units of work on the answer path.

Every inbound message is one inbox item, claimed by a worker under a lease. Storage is
reached through three units, each exactly one transaction:

- `accept` (the only write before an acknowledgement): refuse a second delivery, record
  the item, and — for follow-ups without a mention — check that the bot answers the thread;
- `begin_turn`: claim, get-or-create the conversation, store the person's turn and what
  the channel told about them, and read back history and profile;
- `finish_turn`: store the answer's turns, bump the conversation and mark the item answered,
  atomically (`finish_delivery` marks it done once the channel has taken the answer).

An answer that uses tools also stores each tool round as it ends (`record_round`): a
retry after a crash continues from the rounds already done and never runs their tools
(opening a ticket) again.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, TypeVar

from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_delay, wait_exponential

from core.errors import StorageError
from core.messages import InboundMessage
from core.profiles import Profile
from core.threads import Conversation, NewTurn, Turn

log = logging.getLogger(__name__)

STORE_PATIENCE = 15.0  # seconds a write on the answer path is retried while the database is away

T = TypeVar("T")

# answered: the answer is stored, its delivery not yet recorded (the lease still holds);
# done: delivered (or apologised for).
ItemStatus = Literal["pending", "processing", "answered", "done", "failed"]


@dataclass(frozen=True, kw_only=True, slots=True)
class InboxItem:
    id: int
    message: InboundMessage
    status: ItemStatus
    attempts: int
    lease_until: datetime | None
    last_error: str | None = None
    # The message already showing (part of) this item's answer, if an earlier attempt
    # opened one: the channel finishes it rather than sending a second.
    reply_id: str | None = None
    lease_owner: str | None = None  # the worker answering it (or last answering it)
    stopped_by: str | None = None  # who stopped its answer (a sender id), if anyone did

    def taken_from(self, owner: str | None) -> bool:
        """Another worker than `owner` holds it now (it took it over)."""
        held = self.status in ("processing", "answered")
        return held and self.lease_owner not in (None, owner)


@dataclass(frozen=True, kw_only=True, slots=True)
class Claim:
    """Who takes an item, and for how long before another worker may take it over."""

    owner: str
    lease: timedelta


@dataclass(frozen=True, kw_only=True, slots=True)
class Acceptance:
    """One delivery of a message, as a channel hands it to `accept`.

    - `delivery`: the platform's id of this delivery when it differs from the message id
      (Slack's `event_id`: a mention arrives as `app_mention` and as `message.channels`,
      two deliveries of one message). The message id alone decides what is a duplicate;
      only a retry of the delivery first recorded (or any redelivery, where the platform
      has no such id) re-queues a failed item.
    - `follow_up`: accept only if the bot already has a conversation for this thread (a
      thread reply without a mention).
    - `claim`: the caller answers at once (terminal): the item is recorded claimed.
    - `conversation_id`: the client names the conversation by our id (web); it must exist
      and be the sender's, and the message goes there.
    - `open_conversation`: get or create the conversation now and say which it is (web:
      the client is told the id before the answer starts).
    - `reference`: how to reach the conversation unprompted (a Teams conversation
      reference), kept for notices in the same transaction.
    """

    message: InboundMessage
    delivery: str | None = None
    follow_up: bool = False
    claim: Claim | None = None
    conversation_id: str | None = None
    open_conversation: bool = False
    reference: dict[str, Any] | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class Recorded:
    """First delivery: stored, pending (or claimed, when the acceptance asked)."""

    item: InboxItem
    conversation_id: str | None = None
    kind: Literal["recorded"] = "recorded"


@dataclass(frozen=True, kw_only=True, slots=True)
class Requeued:
    """A redelivery of a message whose answer failed: it is pending (or claimed) again."""

    item: InboxItem
    conversation_id: str | None = None
    kind: Literal["requeued"] = "requeued"


@dataclass(frozen=True, kw_only=True, slots=True)
class Duplicate:
    """A redelivery of a message already waiting, being answered, or answered."""

    item_id: int
    status: ItemStatus
    conversation_id: str | None = None
    kind: Literal["duplicate"] = "duplicate"


@dataclass(frozen=True, kw_only=True, slots=True)
class NotFollowed:
    """A follow-up in a thread the bot does not answer: nothing stored."""

    kind: Literal["not_followed"] = "not_followed"


@dataclass(frozen=True, kw_only=True, slots=True)
class NotYours:
    """The named conversation does not exist or belongs to someone else: nothing stored."""

    kind: Literal["not_yours"] = "not_yours"


AcceptOutcome = Recorded | Requeued | Duplicate | NotFollowed | NotYours
RecordOutcome = Recorded | Requeued | Duplicate


@dataclass(frozen=True, kw_only=True, slots=True)
class Started:
    """A claimed item, ready to answer: its conversation, the thread's earlier turns
    (oldest first, not this message's) and the sender's profile as stored now. `rounds`:
    the tool rounds an earlier attempt already did (each model turn with its tool calls,
    then their results, oldest first), for the retry to continue from."""

    item: InboxItem
    conversation: Conversation
    history: tuple[Turn, ...]
    profile: Profile | None
    rounds: tuple[Turn, ...] = ()
    kind: Literal["started"] = "started"


@dataclass(frozen=True, kw_only=True, slots=True)
class Exhausted:
    """A claimed item that failed too often: the worker apologises and gives it up."""

    item: InboxItem
    kind: Literal["exhausted"] = "exhausted"


@dataclass(frozen=True, kw_only=True, slots=True)
class Answered:
    """A claimed item whose answer is stored but was never recorded as delivered (its
    process died while delivering): deliver that answer, never answer again."""

    item: InboxItem
    answer: Turn
    kind: Literal["answered"] = "answered"


TurnStart = Started | Exhausted | Answered


@dataclass(frozen=True, kw_only=True, slots=True)
class TurnEnd:
    """Turns its lease holder stores for a started item: the answer (`finish_turn`, in
    one transaction with the item being marked answered) or one tool round
    (`record_round`)."""

    item_id: int
    owner: str
    conversation_id: str
    turns: tuple[NewTurn, ...]
    title: str | None = None  # names the conversation, if it has no name yet (`finish_turn`)


@dataclass(frozen=True, kw_only=True, slots=True)
class Backlog:
    """What the inbox holds that is not finished: items by status (pending, processing,
    answered), and when the oldest pending one was recorded."""

    by_status: dict[ItemStatus, int]
    oldest_pending: datetime | None


class LeaseLost(Exception):
    """The item's lease expired and another worker took it over: that one answers."""


async def patiently(write: Callable[[], Awaitable[T]], *, what: str) -> T:
    """`write`, tried again while the database is away (a restart, a failover) for up to
    STORE_PATIENCE seconds; then its StorageError is raised."""
    async for attempt in AsyncRetrying(
        retry=retry_if_exception_type(StorageError),
        wait=wait_exponential(multiplier=0.25, max=2.0),
        stop=stop_after_delay(STORE_PATIENCE),
        before_sleep=lambda state: log.warning(
            "could not write %s (attempt %d); trying again", what, state.attempt_number),
        reraise=True,
    ):
        with attempt:
            return await write()
    raise AssertionError("unreachable: AsyncRetrying returns or raises")
