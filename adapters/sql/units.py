"""The units of work on the answer path, written once for SQLite and PostgreSQL.

Each is a plain synchronous function over a SQLAlchemy `Connection` doing one step's
reads and writes; an executor runs it in exactly one transaction (SQLite's writer thread
with group commit, or PostgreSQL through `AsyncConnection.run_sync`). A unit never calls
the network. See `core/inbox.py` for what each step means.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, Row, Table, and_, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from adapters.sql.rows import (
    conversation_key,
    find_conversation,
    profile_values,
    recent_turns_query,
    to_conversation,
    to_item,
    to_profile,
    to_turn,
    turn_values,
)
from adapters.sql.tables import conversations, inbox, profiles, turns
from core.errors import StorageError
from core.inbox import (
    Acceptance,
    AcceptOutcome,
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
    TurnEnd,
    TurnStart,
)
from core.messages import ConversationRef, InboundMessage, Sender, message_to_json
from core.profiles import Profile
from core.threads import Conversation, NewTurn, Turn

# PostgreSQL: workers LISTEN here and learn of new work without polling.
WORK_CHANNEL = "switchboard_inbox"
_ERROR_LENGTH = inbox.c.last_error.type.length or 256


def insert(conn: Connection, table: Table) -> postgresql.Insert | sqlite.Insert:
    """The dialect's INSERT, which has `on_conflict_do_nothing` on both databases."""
    return postgresql.insert(table) if conn.dialect.name == "postgresql" else sqlite.insert(table)


# ----- accept -----


def accept(conn: Connection, acceptance: Acceptance, now: datetime) -> AcceptOutcome:
    message = acceptance.message
    if acceptance.conversation_id is not None:
        named = conn.execute(
            select(conversations).where(conversations.c.id == acceptance.conversation_id)
        ).one_or_none()
        if named is None or named.owner != message.sender.id or (
            named.channel != message.conversation.channel
        ):
            return NotYours()
        message = replace(message, conversation=to_conversation(named).ref)
    elif acceptance.follow_up and not _answers_thread(conn, message.conversation):
        return NotFollowed()

    outcome = _record(conn, message, acceptance, now)
    if acceptance.open_conversation:
        stored = message if isinstance(outcome, Recorded) else _stored_message(conn, outcome)
        conversation = conversation_of(conn, stored, now)
        outcome = replace(outcome, conversation_id=conversation.id)
    if isinstance(outcome, Recorded | Requeued) and acceptance.claim is None:
        _wake_workers(conn)
    return outcome


def _answers_thread(conn: Connection, ref: ConversationRef) -> bool:
    found = find_conversation(ref).with_only_columns(conversations.c.id).limit(1)
    return conn.execute(found).first() is not None


def _record(
    conn: Connection, message: InboundMessage, acceptance: Acceptance, now: datetime
) -> Recorded | Requeued | Duplicate:
    # Claimed for the caller, who begins the turn next: `begin_turn` counts the attempt.
    claim = acceptance.claim
    held = _holding(claim, now) if claim else {"status": "pending"}
    state: dict[str, Any] = {**held, "attempts": 0}
    key = {"channel": message.conversation.channel, "tenant": message.conversation.tenant,
           "message_key": message.id}
    stmt = (
        insert(conn, inbox)
        .values(**key, **state, delivery_key=acceptance.delivery, payload=message_to_json(message),
                created_at=now, updated_at=now)
        .on_conflict_do_nothing(index_elements=list(key))
        .returning(inbox.c.id)
    )
    item_id = conn.execute(stmt).scalar_one_or_none()
    if item_id is not None:
        item = InboxItem(id=item_id, message=message, status=state["status"],
                         attempts=state["attempts"], lease_until=state.get("lease_until"))
        return Recorded(item=item)

    existing = conn.execute(
        select(inbox.c.id, inbox.c.status, inbox.c.delivery_key).where(
            *(inbox.c[name] == value for name, value in key.items())
        )
    ).one()
    # A retry of the delivery first recorded (or any redelivery, where the platform has
    # no delivery id) re-queues a failed item; another copy of the message does not.
    retry = existing.delivery_key is None or existing.delivery_key == acceptance.delivery
    if existing.status == "failed" and retry:
        again: dict[str, Any] = _holding(claim, now) if claim else {"status": "pending", **_NO_LEASE}
        # The message stays as first delivered; how to reach the person is the latest
        # delivery's (the request now waiting, a refreshed service URL).
        stored = conn.execute(select(inbox.c.payload).where(inbox.c.id == existing.id)).scalar_one()
        payload = {**stored, "channel_data": message.channel_data}
        # Conditional, so two redeliveries racing re-queue the item once.
        requeue = update(inbox).where(inbox.c.id == existing.id, inbox.c.status == "failed")
        values = {**again, "payload": payload, "updated_at": now}
        row = conn.execute(requeue.values(**values).returning(inbox)).one_or_none()
        if row is not None:
            return Requeued(item=to_item(row))
        existing = conn.execute(
            select(inbox.c.id, inbox.c.status).where(inbox.c.id == existing.id)
        ).one()
    return Duplicate(item_id=existing.id, status=existing.status)


def _stored_message(conn: Connection, outcome: Requeued | Duplicate) -> InboundMessage:
    if isinstance(outcome, Requeued):
        return outcome.item.message
    row = conn.execute(select(inbox).where(inbox.c.id == outcome.item_id)).one()
    return to_item(row).message


def _wake_workers(conn: Connection) -> None:
    if conn.dialect.name == "postgresql":
        # Delivered at COMMIT, so a worker never looks before the item is visible.
        conn.execute(select(func.pg_notify(WORK_CHANNEL, "")))


# ----- begin_turn -----


def begin_turns(
    conn: Connection,
    claim: Claim,
    now: datetime,
    *,
    limit: int,
    max_attempts: int,
    history: int,
    count: Callable[[NewTurn], int],
    item_id: int | None = None,
) -> list[TurnStart]:
    """Claim up to `limit` items (oldest first; or just `item_id`) and start each."""
    if item_id is not None:
        # Also an item the caller holds already (accepted claimed, to answer at once).
        which: ColumnElement[bool] = and_(
            inbox.c.id == item_id, or_(_claimable(now), _held(claim.owner))
        )
    else:
        # SKIP LOCKED lets concurrent PostgreSQL claimers pass each other's candidates
        # (SQLite drops the clause: its transactions are serial anyway).
        # A MATERIALIZED CTE, not `IN (subquery)`: PostgreSQL may plan the subquery on
        # the inner side of a nested loop and rescan it for every row, and each rescan
        # skips the rows this UPDATE has just claimed and locks the next ones, so the
        # LIMIT bounded nothing (a claim of 3 took all 5 waiting items). Materialized,
        # the candidates are chosen and locked once.
        candidates = (
            select(inbox.c.id).where(_claimable(now)).order_by(inbox.c.id).limit(limit)
            .with_for_update(skip_locked=True)
            .cte("candidates").prefix_with("MATERIALIZED", dialect="postgresql")
        )
        which = and_(inbox.c.id.in_(select(candidates.c.id)), _claimable(now))
    claimed = update(inbox).where(which).values(
        **_holding(claim, now), attempts=inbox.c.attempts + 1, updated_at=now
    )
    rows = sorted(conn.execute(claimed.returning(inbox)).all(), key=lambda r: r.id)
    items = [to_item(row) for row in rows]
    ready = [item for item in items if item.attempts <= max_attempts]
    conversations_of, profiles_of = _open_in_order(conn, ready, now)
    starts: list[TurnStart] = []
    for item in items:
        if item.attempts > max_attempts:
            starts.append(Exhausted(item=item))
        else:
            starts.append(_start(conn, item, conversations_of[item.id], profiles_of[item.id],
                                 now, history=history, count=count))
    return starts


def _open_in_order(
    conn: Connection, items: Sequence[InboxItem], now: datetime
) -> tuple[dict[int, Conversation], dict[int, Profile | None]]:
    """Get or create the batch's conversations (in key order), then merge its senders'
    profiles (in id order, each sender's items in turn).

    The order is the same in every transaction, so concurrent PostgreSQL batches cannot
    deadlock: a batch waits on another's not yet committed conversation or profile row,
    and taken in item order, one batch could hold a new conversation the other waits for
    while it waits for a profile the other inserted (seen with three claimers).
    """
    conversations: dict[int, Conversation] = {}
    by_thread = sorted(
        items, key=lambda i: (tuple(conversation_key(i.message.conversation).values()), i.id)
    )
    for item in by_thread:
        conversations[item.id] = conversation_of(conn, item.message, now)
    profiles: dict[int, Profile | None] = {}
    for item in sorted(items, key=lambda i: (i.message.sender.id, i.id)):
        profiles[item.id] = _sender_profile(conn, item.message.sender, now)
    return conversations, profiles


def _start(
    conn: Connection, item: InboxItem, conversation: Conversation, profile: Profile | None,
    now: datetime, *, history: int, count: Callable[[NewTurn], int],
) -> Started:
    message = item.message
    recent = conn.execute(recent_turns_query(conversation.id, history + 1)).all()
    earlier = [to_turn(r) for r in reversed(recent) if r.inbox_item_id != item.id]
    # Not `[-history:]`: with history=0 that is the whole list (the turn read above).
    earlier = earlier[max(len(earlier) - history, 0):]
    # Only a retry can find its own turn: an earlier attempt stored it, then died.
    if item.attempts <= 1 or not _has_user_turn(conn, item.id):
        turn = NewTurn(role="user", content=message.text, inbox_item_id=item.id)
        conn.execute(
            insert(conn, turns).values(turn_values(conversation.id, replace(
                turn, tokens=count(turn)), now))
        )
    return Started(item=item, conversation=conversation, history=tuple(earlier), profile=profile)


def _has_user_turn(conn: Connection, item_id: int) -> bool:
    found = select(turns.c.id).where(turns.c.inbox_item_id == item_id, turns.c.role == "user")
    return conn.execute(found.limit(1)).first() is not None


def conversation_of(conn: Connection, message: InboundMessage, now: datetime) -> Conversation:
    """Private threads (DMs, web, terminal) belong to their sender; shared ones to nobody."""
    owner = message.sender.id if message.is_direct else None
    return get_or_create_conversation(conn, message.conversation, owner, now)


def get_or_create_conversation(
    conn: Connection, ref: ConversationRef, owner: str | None, now: datetime
) -> Conversation:
    find = find_conversation(ref)
    row = conn.execute(find).one_or_none()
    if row is None:
        key = conversation_key(ref)
        # Insert-or-nothing then read: concurrent callers all end up reading the one row.
        conn.execute(
            insert(conn, conversations)
            .values(id=uuid.uuid4().hex, owner=owner, created_at=now, updated_at=now, **key)
            .on_conflict_do_nothing(index_elements=list(key))
        )
        row = conn.execute(find).one()
    return to_conversation(row)


def _sender_profile(conn: Connection, sender: Sender, now: datetime) -> Profile | None:
    """Merge what the channel told about the sender into the stored profile (written only
    when that changes something) and return the result."""
    told = Profile(id=sender.id, name=sender.name, email=sender.email,
                   time_zone=sender.time_zone)
    # The row lock (PostgreSQL) makes concurrent turns of one person merge in turn.
    stored = select(profiles).where(profiles.c.id == sender.id).with_for_update()
    row = conn.execute(stored).one_or_none()
    if row is None:
        if told == Profile(id=sender.id):
            return None
        fresh = insert(conn, profiles).values(
            {**profile_values(told), "id": told.id, "updated_at": now}
        ).on_conflict_do_nothing(index_elements=["id"])
        if conn.execute(fresh).rowcount == 1:
            return told
        row = conn.execute(stored).one()  # another turn of theirs inserted it meanwhile
    current = to_profile(row)
    merged = current.merged(told)
    if merged != current:
        conn.execute(
            update(profiles).where(profiles.c.id == sender.id)
            .values({**profile_values(merged), "updated_at": now})
        )
    return merged


# ----- finish_turn -----


def finish_turn(conn: Connection, end: TurnEnd, now: datetime) -> list[Turn]:
    done = update(inbox).where(inbox.c.id == end.item_id, _held(end.owner)).values(
        status="done", **_NO_LEASE, updated_at=now
    )
    if conn.execute(done).rowcount != 1:
        raise LeaseLost(f"inbox item {end.item_id} is no longer held by {end.owner}")
    return add_turns(conn, end.conversation_id, end.turns, now)


def add_turns(
    conn: Connection, conversation_id: str, new: Sequence[NewTurn], now: datetime
) -> list[Turn]:
    """Append turns and bump the conversation. Bumping first also locks its row
    (PostgreSQL), so concurrent batches for one thread commit one after the other."""
    if not new:
        return []
    bump = update(conversations).where(conversations.c.id == conversation_id)
    if conn.execute(bump.values(updated_at=now)).rowcount != 1:
        raise StorageError(f"conversation {conversation_id} does not exist")
    stmt = insert(conn, turns).returning(turns, sort_by_parameter_order=True)
    rows = conn.execute(stmt, [turn_values(conversation_id, t, now) for t in new]).all()
    return [to_turn(row) for row in rows]


# ----- leases -----


def renew(conn: Connection, item_ids: Sequence[int], claim: Claim, now: datetime) -> set[int]:
    stmt = (
        update(inbox).where(inbox.c.id.in_(item_ids), _held(claim.owner))
        .values(lease_until=now + claim.lease, updated_at=now).returning(inbox.c.id)
    )
    return set(conn.execute(stmt).scalars())


def release(conn: Connection, item_id: int, owner: str, now: datetime) -> bool:
    # The attempt stays counted: it may have stored the person's turn already.
    return _if_held(conn, item_id, owner, {"status": "pending", **_NO_LEASE}, now)


def fail(conn: Connection, item_id: int, owner: str, error: str, now: datetime) -> bool:
    values = {"status": "failed", "last_error": error[:_ERROR_LENGTH], **_NO_LEASE}
    return _if_held(conn, item_id, owner, values, now)


# ----- reads -----


def get_item(conn: Connection, item_id: int) -> InboxItem | None:
    row = conn.execute(select(inbox).where(inbox.c.id == item_id)).one_or_none()
    return None if row is None else to_item(row)


def find_item(conn: Connection, channel: str, tenant: str, message_id: str) -> InboxItem | None:
    query = select(inbox).where(
        inbox.c.channel == channel, inbox.c.tenant == tenant, inbox.c.message_key == message_id
    )
    row = conn.execute(query).one_or_none()
    return None if row is None else to_item(row)


def answer_of(conn: Connection, item_id: int) -> Turn | None:
    """The final answer stored for an item (its last assistant turn without tool calls)."""
    query = (
        select(turns)
        .where(turns.c.inbox_item_id == item_id, turns.c.role == "assistant",
               turns.c.tool_calls.is_(None))
        .order_by(turns.c.id.desc())
        .limit(1)
    )
    row: Row[Any] | None = conn.execute(query).one_or_none()
    return None if row is None else to_turn(row)


# ----- helpers -----

_NO_LEASE: dict[str, Any] = {"lease_owner": None, "lease_until": None}


def _claimable(now: datetime) -> ColumnElement[bool]:
    expired = and_(inbox.c.status == "processing", inbox.c.lease_until < now)
    return or_(inbox.c.status == "pending", expired)


def _holding(claim: Claim, now: datetime) -> dict[str, Any]:
    return {"status": "processing", "lease_owner": claim.owner, "lease_until": now + claim.lease}


def _held(owner: str) -> ColumnElement[bool]:
    return and_(inbox.c.status == "processing", inbox.c.lease_owner == owner)


def _if_held(
    conn: Connection, item_id: int, owner: str, values: dict[str, Any], now: datetime
) -> bool:
    stmt = update(inbox).where(inbox.c.id == item_id, _held(owner)).values(
        **values, updated_at=now
    )
    return conn.execute(stmt).rowcount == 1
