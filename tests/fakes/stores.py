"""In-memory stores: every storage port on plain dicts, for unit tests that touch no
database.

They share one `InMemoryDatabase` as the SQL stores share tables: the conversations,
turns and profiles the inbox's units write are the ones `InMemoryConversationStore` and
`InMemoryProfileStore` read. `InMemoryInbox` has the semantics of the SQL units
(`adapters/sql/units.py`) — leases on a clock, attempts, `Exhausted`, the delivery-key
retry rule, follow-ups, named and opened conversations, `LeaseLost` — and
`tests/adapters/sql/test_inbox.py` runs the same behaviour tests against it and against
SQLite and PostgreSQL, which keeps the two honest.

Each operation runs without a suspension point after its first one, so it is atomic the
way one transaction is; the first `await` lets concurrent callers interleave between
operations as they would on a database.
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from bots.bootstrap import Stores
from core.errors import NotFound, StorageError
from core.feedback import Feedback, Rating
from core.inbox import (
    Acceptance,
    AcceptOutcome,
    Answered,
    Claim,
    Duplicate,
    Exhausted,
    InboxItem,
    ItemStatus,
    LeaseLost,
    NotFollowed,
    NotYours,
    Recorded,
    Requeued,
    Started,
    TurnEnd,
    TurnStart,
)
from core.messages import ConversationRef, InboundMessage, message_from_json, message_to_json
from core.profiles import Profile
from core.threads import Conversation, ConversationSummary, ListPosition, NewTurn, Turn
from core.tickets.model import Comment, NewTicket, Ticket, TicketStatus

ERROR_LENGTH = 256  # the SQL column `inbox.last_error` keeps this many characters
COMMENT_LENGTH = 2000  # and `feedback.comment` (cut by the SQL store) this many


class TickingClock:
    """UTC wall-clock time that never gives the same instant twice, so an operation is
    always later than the one before it (a lease of 0 has expired by the next claim,
    however fast the dicts answer)."""

    def __init__(self) -> None:
        self._last = datetime.min.replace(tzinfo=UTC)

    def __call__(self) -> datetime:
        self._last = max(datetime.now(UTC), self._last + timedelta(microseconds=1))
        return self._last


def _thread_key(ref: ConversationRef) -> tuple[str, str, str, str]:
    # No thread is "" (as the SQL column), so one unthreaded conversation is one key.
    return (ref.channel, ref.tenant, ref.conversation, ref.thread or "")


@dataclass(kw_only=True)
class _ItemRow:
    """One row of the inbox, as the SQL table keeps it (the message as JSON)."""

    id: int
    key: tuple[str, str, str]  # channel, tenant, message id
    payload: dict[str, Any]
    status: ItemStatus
    attempts: int
    lease_owner: str | None = None
    lease_until: datetime | None = None
    last_error: str | None = None
    delivery_key: str | None = None
    reply_id: str | None = None
    stopped_by: str | None = None
    created_at: datetime
    updated_at: datetime

    def item(self) -> InboxItem:
        return InboxItem(
            id=self.id, message=message_from_json(self.payload), status=self.status,
            attempts=self.attempts, lease_until=self.lease_until, last_error=self.last_error,
            reply_id=self.reply_id, lease_owner=self.lease_owner, stopped_by=self.stopped_by,
        )

    def claimable(self, now: datetime) -> bool:
        working = self.status in ("processing", "answered")
        expired = working and self.lease_until is not None and self.lease_until < now
        return self.status == "pending" or expired

    def held_by(self, owner: str) -> bool:
        return self.status in ("processing", "answered") and self.lease_owner == owner

    def hold(self, claim: Claim, now: datetime) -> None:
        # An answered item stays answered: whoever holds it now delivers it.
        status: ItemStatus = "answered" if self.status == "answered" else "processing"
        self.status, self.lease_owner, self.lease_until = status, claim.owner, now + claim.lease

    def unhold(self, status: ItemStatus) -> None:
        self.status, self.lease_owner, self.lease_until = status, None, None


@dataclass
class InMemoryDatabase:
    """The state every in-memory store reads and writes: one database's tables."""

    items: dict[int, _ItemRow] = field(default_factory=dict)
    item_keys: dict[tuple[str, str, str], int] = field(default_factory=dict)
    conversations: dict[str, Conversation] = field(default_factory=dict)
    conversation_keys: dict[tuple[str, str, str, str], str] = field(default_factory=dict)
    turns: dict[str, list[Turn]] = field(default_factory=dict)  # conversation id → turns
    profiles: dict[str, Profile] = field(default_factory=dict)
    profile_written_at: dict[str, datetime] = field(default_factory=dict)
    deliveries: dict[tuple[str, str], datetime] = field(default_factory=dict)
    feedback: dict[tuple[int, str], tuple[str, str | None]] = field(default_factory=dict)
    sent_messages: dict[tuple[str, str, str, str], int] = field(default_factory=dict)
    references: dict[tuple[str, str, str, str], dict[str, Any]] = field(default_factory=dict)
    tickets: dict[int, Ticket] = field(default_factory=dict)
    clock: Callable[[], datetime] = field(default_factory=TickingClock)  # unless a store's `now`
    _ids: dict[str, itertools.count[int]] = field(default_factory=dict)

    def next_id(self, table: str) -> int:
        """Autoincrement, one sequence per table, from 1."""
        return next(self._ids.setdefault(table, itertools.count(1)))

    # ----- what the SQL units share (`adapters/sql/units.py`) -----

    def find_conversation(self, ref: ConversationRef) -> Conversation | None:
        conversation_id = self.conversation_keys.get(_thread_key(ref))
        return None if conversation_id is None else self.conversations[conversation_id]

    def get_or_create_conversation(
        self, ref: ConversationRef, owner: str | None, now: datetime
    ) -> Conversation:
        found = self.find_conversation(ref)
        if found is not None:
            return found
        conversation = Conversation(
            id=uuid.uuid4().hex, ref=replace(ref, thread=ref.thread or None), owner=owner,
            created_at=now, updated_at=now,
        )
        self.conversations[conversation.id] = conversation
        self.conversation_keys[_thread_key(ref)] = conversation.id
        self.turns[conversation.id] = []
        return conversation

    def conversation_of(self, message: InboundMessage, now: datetime) -> Conversation:
        """Private threads (DMs, web, terminal) belong to their sender; shared ones to nobody."""
        owner = message.sender.id if message.is_direct else None
        return self.get_or_create_conversation(message.conversation, owner, now)

    def add_turns(self, conversation_id: str, new: Sequence[NewTurn], now: datetime) -> list[Turn]:
        """Append turns and bump the conversation."""
        if not new:
            return []
        conversation = self.conversations.get(conversation_id)
        if conversation is None:
            raise StorageError(f"conversation {conversation_id} does not exist")
        self.conversations[conversation_id] = replace(conversation, updated_at=now)
        return self.insert_turns(conversation_id, new, now)

    def insert_turns(
        self, conversation_id: str, new: Sequence[NewTurn], now: datetime
    ) -> list[Turn]:
        """Append turns to an existing conversation, leaving its `updated_at` alone."""
        stored = [
            Turn(
                id=self.next_id("turns"), conversation_id=conversation_id, role=t.role,
                content=t.content, tool_calls=tuple(t.tool_calls), tool_call_id=t.tool_call_id,
                tokens=t.tokens, citations=tuple(t.citations), inbox_item_id=t.inbox_item_id,
                created_at=now,
            )
            for t in new
        ]
        self.turns[conversation_id].extend(stored)
        return stored

    def upsert_profile(self, profile: Profile, now: datetime) -> Profile:
        """Insert, or merge into what is stored; written only when that changes something."""
        current = self.profiles.get(profile.id)
        merged = profile if current is None else current.merged(profile)
        if merged != current:
            self.profiles[profile.id] = merged
            self.profile_written_at[profile.id] = now
        return merged


async def _operation() -> None:
    """Where a database call would suspend its caller: before any of its work."""
    await asyncio.sleep(0)


class InMemoryInbox:
    """`Inbox` with the semantics of the SQL units, each operation atomic."""

    def __init__(
        self,
        db: InMemoryDatabase | None = None,
        *,
        count: Callable[[NewTurn], int] = lambda turn: 0,
        history: int = 100,
        max_attempts: int = 3,
        now: Callable[[], datetime] | None = None,
    ) -> None:
        self.db = db if db is not None else InMemoryDatabase()
        self._count = count
        self._history = history
        self._max_attempts = max_attempts
        self._now = now if now is not None else self.db.clock

    # ----- accept -----

    async def accept(self, acceptance: Acceptance) -> AcceptOutcome:
        await _operation()
        now, db = self._now(), self.db
        message = acceptance.message
        if acceptance.conversation_id is not None:
            named = db.conversations.get(acceptance.conversation_id)
            if named is None or named.owner != message.sender.id or (
                named.ref.channel != message.conversation.channel
            ):
                return NotYours()
            message = replace(message, conversation=named.ref)
        elif acceptance.follow_up and db.find_conversation(message.conversation) is None:
            return NotFollowed()

        outcome = self._record(message, acceptance, now)
        if acceptance.reference is not None:
            db.references[_thread_key(message.conversation)] = dict(acceptance.reference)
        if acceptance.open_conversation:
            if isinstance(outcome, Recorded):
                stored = message
            else:
                item_id = outcome.item.id if isinstance(outcome, Requeued) else outcome.item_id
                stored = message_from_json(db.items[item_id].payload)
            conversation = db.conversation_of(stored, now)
            outcome = replace(outcome, conversation_id=conversation.id)
        return outcome

    def _record(
        self, message: InboundMessage, acceptance: Acceptance, now: datetime
    ) -> Recorded | Requeued | Duplicate:
        db, claim = self.db, acceptance.claim
        key = (message.conversation.channel, message.conversation.tenant, message.id)
        existing_id = db.item_keys.get(key)
        if existing_id is None:
            row = _ItemRow(
                id=db.next_id("inbox"), key=key, payload=message_to_json(message),
                status="pending", attempts=0, delivery_key=acceptance.delivery,
                created_at=now, updated_at=now,
            )
            if claim is not None:  # `begin_turn` counts the attempt
                row.hold(claim, now)
            db.items[row.id] = row
            db.item_keys[key] = row.id
            return Recorded(item=replace(row.item(), message=message))

        row = db.items[existing_id]
        # Only a retry of the delivery first recorded (or any redelivery when none was
        # recorded) re-queues a failed item.
        retry = row.delivery_key is None or row.delivery_key == acceptance.delivery
        if row.status == "failed" and retry:
            if claim is not None:
                row.hold(claim, now)
            else:
                row.unhold("pending")
            # The message stays as first delivered; how to reach the person is the latest
            # delivery's.
            row.payload = {**row.payload, "channel_data": message_to_json(message)["channel_data"]}
            row.updated_at = now
            return Requeued(item=row.item())
        return Duplicate(item_id=row.id, status=row.status)

    # ----- begin_turn -----

    async def begin_turns(self, claim: Claim, *, limit: int) -> list[TurnStart]:
        await _operation()
        now = self._now()
        rows = sorted(
            (row for row in self.db.items.values() if row.claimable(now)), key=lambda r: r.id
        )[:limit]
        return self._begin(rows, claim, now)

    async def begin_turn(self, item_id: int, claim: Claim) -> TurnStart | None:
        await _operation()
        now = self._now()
        row = self.db.items.get(item_id)
        # Also an item the caller holds already (accepted claimed, to answer at once).
        if row is None or not (row.claimable(now) or row.held_by(claim.owner)):
            return None
        return self._begin([row], claim, now)[0]

    def _begin(self, rows: list[_ItemRow], claim: Claim, now: datetime) -> list[TurnStart]:
        for row in rows:
            row.hold(claim, now)
            row.attempts += 1
            row.updated_at = now
        starts: list[TurnStart] = []
        for row in rows:
            item = row.item()
            answer = self._answer(item.id) if item.status == "answered" else None
            if item.attempts > self._max_attempts:
                starts.append(Exhausted(item=item))
            elif answer is not None:
                starts.append(Answered(item=item, answer=answer))
            else:
                starts.append(self._start(item, now))
        return starts

    def _start(self, item: InboxItem, now: datetime) -> Started:
        db, message = self.db, item.message
        conversation = db.conversation_of(message, now)
        thread = db.turns[conversation.id]
        earlier = [t for t in thread if t.inbox_item_id != item.id]
        history = earlier[len(earlier) - self._history:] if self._history > 0 else []
        # Only a retry can find its own turn: an earlier attempt stored it, then died.
        rounds: tuple[Turn, ...] = ()
        if item.attempts <= 1 or not any(
            t.inbox_item_id == item.id and t.role == "user" for t in thread
        ):
            turn = NewTurn(role="user", content=message.text, inbox_item_id=item.id)
            # As in SQL, the person's turn does not bump the conversation: its answer does.
            db.insert_turns(conversation.id, [replace(turn, tokens=self._count(turn))], now)
        else:
            rounds = tuple(t for t in thread if t.inbox_item_id == item.id
                           and (t.role == "tool" or bool(t.tool_calls)))
        sender = message.sender
        told = Profile(id=sender.id, name=sender.name, email=sender.email,
                       time_zone=sender.time_zone)
        if sender.id not in db.profiles and told == Profile(id=sender.id):
            profile = None
        else:
            profile = db.upsert_profile(told, now)
        return Started(item=item, conversation=conversation, history=tuple(history),
                       profile=profile, rounds=rounds)

    # ----- finish_turn -----

    async def finish_turn(self, end: TurnEnd) -> list[Turn]:
        await _operation()
        now, db = self._now(), self.db
        row = db.items.get(end.item_id)
        if row is None or not row.held_by(end.owner):
            raise LeaseLost(f"inbox item {end.item_id} is no longer held by {end.owner}")
        if end.turns and end.conversation_id not in db.conversations:
            # One transaction: the item stays as it was when the turns cannot be stored.
            raise StorageError(f"conversation {end.conversation_id} does not exist")
        row.status, row.updated_at = "answered", now  # still held while it is delivered
        stored = db.add_turns(end.conversation_id, end.turns, now)
        conversation = db.conversations.get(end.conversation_id)
        if end.title and conversation is not None and conversation.title is None:
            db.conversations[conversation.id] = replace(conversation,
                                                        title=end.title[:TITLE_CHARS])
        return stored

    async def record_round(self, end: TurnEnd) -> list[Turn]:
        await _operation()
        now, db = self._now(), self.db
        row = db.items.get(end.item_id)
        if row is None or not row.held_by(end.owner) or row.status != "processing":
            raise LeaseLost(f"inbox item {end.item_id} is no longer held by {end.owner}")
        if end.conversation_id not in db.conversations:
            raise StorageError(f"conversation {end.conversation_id} does not exist")
        row.updated_at = now
        return db.add_turns(end.conversation_id, end.turns, now)

    async def note_reply(self, item_id: int, reply_id: str, *, owner: str) -> bool:
        await _operation()
        row = self.db.items.get(item_id)
        if row is None or not row.held_by(owner):
            return False
        row.reply_id, row.updated_at = reply_id, self._now()
        return True

    async def finish_delivery(self, item_id: int, *, owner: str) -> bool:
        await _operation()
        return self._if_held(item_id, owner, "done")

    # ----- leases -----

    async def renew(self, item_ids: Sequence[int], claim: Claim) -> set[int]:
        await _operation()
        now, renewed = self._now(), set[int]()
        for item_id in item_ids:
            row = self.db.items.get(item_id)
            if row is not None and row.held_by(claim.owner):
                row.lease_until, row.updated_at = now + claim.lease, now
                renewed.add(item_id)
        return renewed

    async def release(self, item_id: int, *, owner: str) -> bool:
        await _operation()
        # The attempt stays counted: it may have stored the person's turn already.
        row = self.db.items.get(item_id)
        if row is not None and row.held_by(owner) and row.status == "answered":
            # Still to deliver: its lease ends now, so the next claim delivers it.
            row.lease_owner, row.lease_until = None, self._now()
            row.updated_at = self._now()
            return True
        return self._if_held(item_id, owner, "pending")

    async def fail(self, item_id: int, *, owner: str, error: str) -> bool:
        await _operation()
        return self._if_held(item_id, owner, "failed", error=error[:ERROR_LENGTH])

    def _if_held(
        self, item_id: int, owner: str, status: ItemStatus, *, error: str | None = None
    ) -> bool:
        row = self.db.items.get(item_id)
        if row is None or not row.held_by(owner):
            return False
        row.unhold(status)
        row.updated_at = self._now()
        if error is not None:
            row.last_error = error
        return True

    # ----- reads -----

    async def get(self, item_id: int) -> InboxItem | None:
        await _operation()
        row = self.db.items.get(item_id)
        return None if row is None else row.item()

    async def find(self, *, channel: str, tenant: str, message_id: str) -> InboxItem | None:
        await _operation()
        item_id = self.db.item_keys.get((channel, tenant, message_id))
        return None if item_id is None else self.db.items[item_id].item()

    async def answer_of(self, item_id: int) -> Turn | None:
        """The final answer stored for an item (its last assistant turn without tool calls)."""
        await _operation()
        return self._answer(item_id)

    async def request_stop(self, item_id: int, *, by: str) -> ItemStatus | None:
        await _operation()
        row = self.db.items.get(item_id)
        if row is None or row.status not in ("pending", "processing"):
            return None
        before = row.status
        row.stopped_by = row.stopped_by or by
        row.updated_at = self._now()
        if before == "pending":
            row.unhold("done")
        return before

    async def stopped_among(self, item_ids: Sequence[int]) -> set[int]:
        await _operation()
        return {i for i in item_ids if (row := self.db.items.get(i)) and row.stopped_by}

    async def unfinished_in(self, conversation_id: str) -> InboxItem | None:
        await _operation()
        for turn in reversed(self.db.turns.get(conversation_id, [])):
            row = self.db.items.get(turn.inbox_item_id) if turn.inbox_item_id else None
            if turn.role == "user" and row is not None and row.status in ("pending", "processing"):
                return row.item()
        return None

    def _answer(self, item_id: int) -> Turn | None:
        answers = [
            t for thread in self.db.turns.values() for t in thread
            if t.inbox_item_id == item_id and t.role == "assistant" and not t.tool_calls
        ]
        return max(answers, key=lambda t: t.id, default=None)


TITLE_CHARS = 200  # as much of the first message as the SQL store reads for a title


class InMemoryConversationStore:
    def __init__(
        self, db: InMemoryDatabase | None = None, *, now: Callable[[], datetime] | None = None
    ) -> None:
        self.db = db if db is not None else InMemoryDatabase()
        self._now = now if now is not None else self.db.clock

    async def get_or_create(self, ref: ConversationRef, *, owner: str | None) -> Conversation:
        await _operation()
        return self.db.get_or_create_conversation(ref, owner, self._now())

    async def get(self, conversation_id: str) -> Conversation | None:
        await _operation()
        return self.db.conversations.get(conversation_id)

    async def find(self, ref: ConversationRef) -> Conversation | None:
        await _operation()
        return self.db.find_conversation(ref)

    async def latest(self, *, channel: str, owner: str) -> Conversation | None:
        await _operation()
        mine = [c for c in self.db.conversations.values()
                if c.ref.channel == channel and c.owner == owner]
        # Of equally recent ones, the one created last (SQL leaves ties unordered).
        return max(reversed(mine), key=lambda c: c.updated_at, default=None)

    async def owned(
        self, *, channel: str, owner: str, limit: int, after: ListPosition | None = None
    ) -> list[ConversationSummary]:
        await _operation()
        mine = sorted(
            (c for c in self.db.conversations.values()
             if c.ref.channel == channel and c.owner == owner),
            key=lambda c: (c.updated_at, c.id), reverse=True,
        )
        if after is not None:
            mine = [c for c in mine if (c.updated_at, c.id) < (after.updated_at, after.id)]
        return [
            ConversationSummary(
                id=c.id, created_at=c.created_at, updated_at=c.updated_at,
                title=c.title or next(
                    (" ".join(t.content[:TITLE_CHARS].split())
                     for t in self.db.turns.get(c.id, []) if t.role == "user"), ""),
            )
            for c in mine[:limit]
        ]

    async def recent_turns(self, conversation_id: str, limit: int) -> list[Turn]:
        await _operation()
        turns = self.db.turns.get(conversation_id, [])
        return list(turns[len(turns) - limit:]) if limit > 0 else []

    async def add_turns(self, conversation_id: str, turns: Sequence[NewTurn]) -> list[Turn]:
        await _operation()
        return self.db.add_turns(conversation_id, turns, self._now())


class InMemoryProfileStore:
    def __init__(
        self, db: InMemoryDatabase | None = None, *, now: Callable[[], datetime] | None = None
    ) -> None:
        self.db = db if db is not None else InMemoryDatabase()
        self._now = now if now is not None else self.db.clock

    async def get(self, sender_id: str) -> Profile | None:
        await _operation()
        return self.db.profiles.get(sender_id)

    async def upsert(self, profile: Profile) -> Profile:
        await _operation()
        return self.db.upsert_profile(profile, self._now())


class InMemoryDeliveryLog:
    def __init__(
        self, db: InMemoryDatabase | None = None, *, now: Callable[[], datetime] | None = None
    ) -> None:
        self.db = db if db is not None else InMemoryDatabase()
        self._now = now if now is not None else self.db.clock

    async def first_delivery(self, channel: str, key: str) -> bool:
        await _operation()
        if (channel, key) in self.db.deliveries:
            return False
        self.db.deliveries[(channel, key)] = self._now()
        return True

    async def seen(self, channel: str, key: str) -> bool:
        await _operation()
        return (channel, key) in self.db.deliveries

    async def forget_before(self, when: datetime) -> int:
        await _operation()
        old = [k for k, received in self.db.deliveries.items() if received < when]
        for k in old:
            del self.db.deliveries[k]
        return len(old)


class InMemoryFeedbackStore:
    def __init__(self, db: InMemoryDatabase | None = None) -> None:
        self.db = db if db is not None else InMemoryDatabase()

    async def record(self, feedback: Feedback) -> bool:
        await _operation()
        # The rated turn must be an answer in the conversation the rating came from.
        conversation = self.db.find_conversation(feedback.where)
        thread = [] if conversation is None else self.db.turns[conversation.id]
        if not any(t.id == feedback.turn_id and t.role == "assistant" for t in thread):
            return False
        comment = feedback.comment[:COMMENT_LENGTH] if feedback.comment else None
        self.db.feedback[(feedback.turn_id, feedback.rater)] = (feedback.rating, comment)
        return True

    async def given_by(self, rater: str, turn_ids: Sequence[int]) -> dict[int, Rating]:
        await _operation()
        return {turn: rating for (turn, by), (rating, _) in self.db.feedback.items()
                if by == rater and turn in turn_ids}

    async def ratings(self, turn_id: int) -> dict[str, str]:
        """rater → rating for one turn (for tests and reports)."""
        await _operation()
        return {rater: rating for (turn, rater), (rating, _) in self.db.feedback.items()
                if turn == turn_id}


class InMemorySentMessages:
    def __init__(self, db: InMemoryDatabase | None = None) -> None:
        self.db = db if db is not None else InMemoryDatabase()

    async def remember(self, where: ConversationRef, message_id: str, turn_id: int) -> None:
        await _operation()
        key = (where.channel, where.tenant, where.conversation, message_id)
        self.db.sent_messages.setdefault(key, turn_id)  # the first one stays, as in SQL

    async def turn_of(self, where: ConversationRef, message_id: str) -> int | None:
        await _operation()
        return self.db.sent_messages.get(
            (where.channel, where.tenant, where.conversation, message_id)
        )


class InMemoryConversationReferences:
    def __init__(self, db: InMemoryDatabase | None = None) -> None:
        self.db = db if db is not None else InMemoryDatabase()

    async def remember(self, where: ConversationRef, reference: dict[str, Any]) -> None:
        await _operation()
        self.db.references[_thread_key(where)] = dict(reference)

    async def get(self, where: ConversationRef) -> dict[str, Any] | None:
        await _operation()
        found = self.db.references.get(_thread_key(where))
        return None if found is None else dict(found)


class InMemoryTicketStore:
    """`TicketStore` as `adapters/sql/tickets.py` behaves: ids from 1, newest first."""

    def __init__(
        self, db: InMemoryDatabase | None = None, *, now: Callable[[], datetime] | None = None
    ) -> None:
        self.db = db if db is not None else InMemoryDatabase()
        self._now = now if now is not None else self.db.clock

    async def create(self, draft: NewTicket) -> Ticket:
        await _operation()
        now = self._now()
        origin = draft.origin
        ticket = Ticket(
            id=self.db.next_id("tickets"), title=draft.title, description=draft.description,
            priority=draft.priority, status="open", requester=draft.requester,
            requester_name=draft.requester_name,
            origin=None if origin is None or not origin.channel else origin,
            origin_link=draft.origin_link, assignee=None, created_at=now, updated_at=now,
        )
        self.db.tickets[ticket.id] = ticket
        return ticket

    async def get(self, ticket_id: int) -> Ticket | None:
        await _operation()
        return self.db.tickets.get(ticket_id)

    async def list(
        self, *, requester: str | None, statuses: Sequence[TicketStatus], limit: int
    ) -> list[Ticket]:
        await _operation()
        found = [
            t for t in self.db.tickets.values()
            if t.status in statuses and (requester is None or t.requester == requester)
        ]
        found.sort(key=lambda t: (t.updated_at, t.id), reverse=True)
        # Listings carry no comments (the SQL store reads them only for one ticket).
        return [replace(t, comments=()) for t in found[:max(limit, 0)]]

    async def update(
        self, ticket_id: int, *, status: TicketStatus | None = None,
        assignee: str | None = None, clear_assignee: bool = False,
    ) -> Ticket:
        await _operation()
        ticket = self.db.tickets.get(ticket_id)
        if ticket is None:
            raise NotFound(f"ticket {ticket_id}")
        changes: dict[str, Any] = {"updated_at": self._now()}
        if status is not None:
            changes["status"] = status
        if assignee is not None or clear_assignee:
            changes["assignee"] = assignee
        self.db.tickets[ticket_id] = replace(ticket, **changes)
        return self.db.tickets[ticket_id]

    async def add_comment(
        self, ticket_id: int, *, author: str, author_name: str | None, text: str
    ) -> Ticket:
        await _operation()
        ticket = self.db.tickets.get(ticket_id)
        if ticket is None:
            # SQL refuses the comment (its foreign key) as a StorageError.
            raise StorageError(f"commenting on ticket {ticket_id} failed")
        now = self._now()
        comment = Comment(author=author, author_name=author_name, text=text, created_at=now)
        self.db.tickets[ticket_id] = replace(
            ticket, comments=(*ticket.comments, comment), updated_at=now
        )
        return self.db.tickets[ticket_id]


def in_memory_stores(
    db: InMemoryDatabase | None = None,
    *,
    now: Callable[[], datetime] | None = None,
    count: Callable[[NewTurn], int] = lambda turn: 0,
    history: int = 100,
    max_attempts: int = 3,
) -> Stores:
    """Every store on one in-memory database (a fresh one unless `db` is given), on `now`
    (by default the database's clock: wall-clock time, strictly increasing)."""
    db = db if db is not None else InMemoryDatabase()

    async def check() -> None:
        return None

    return Stores(
        inbox=InMemoryInbox(db, count=count, history=history, max_attempts=max_attempts,
                            now=now),
        conversations=InMemoryConversationStore(db, now=now),
        profiles=InMemoryProfileStore(db, now=now),
        deliveries=InMemoryDeliveryLog(db, now=now),
        feedback=InMemoryFeedbackStore(db),
        sent_messages=InMemorySentMessages(db),
        tickets=InMemoryTicketStore(db, now=now),
        references=InMemoryConversationReferences(db),
        check=check,
    )
