"""The units of work on the answer path, written once for SQLite and PostgreSQL.

Each is a plain synchronous function over a SQLAlchemy `Connection` doing one step's
reads and writes; an executor runs it in exactly one transaction (SQLite's writer thread
with group commit, or PostgreSQL through `AsyncConnection.run_sync`). A unit never calls
the network. See `core/inbox.py` for what each step means.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Connection,
    Row,
    String,
    Table,
    and_,
    bindparam,
    case,
    func,
    or_,
    select,
    type_coerce,
    update,
)
from sqlalchemy import insert as sa_insert
from sqlalchemy.dialects import postgresql, sqlite

from adapters.sql.groups import sender_groups
from adapters.sql.rows import (
    conversation_key,
    profile_values,
    recent_turns_query,
    to_conversation,
    to_item,
    to_profile,
    to_turn,
    turn_values,
)
from adapters.sql.tables import conversation_references, conversations, inbox, profiles, turns
from adapters.sql.tables import sent_messages as sent_messages_table
from core.errors import StorageError
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
from core.messages import ConversationRef, InboundMessage, Sender, message_to_json
from core.profiles import Profile
from core.threads import Conversation, NewTurn, Turn

# PostgreSQL: workers LISTEN here and learn of new work without polling.
WORK_CHANNEL = "switchboard_inbox"
# ... and here of an answer to stop (the payload is the inbox item's id).
STOP_CHANNEL = "switchboard_stop"
_ERROR_LENGTH = inbox.c.last_error.type.length or 256


def insert(conn: Connection, table: Table) -> postgresql.Insert | sqlite.Insert:
    """The dialect's INSERT, which has `on_conflict_do_nothing` on both databases."""
    return postgresql.insert(table) if conn.dialect.name == "postgresql" else sqlite.insert(table)


# Every statement of the hot path is built once, with bound parameters: building a
# statement and its cache key per call cost SQLAlchemy several times the database's own
# time (`benchmarks/README.md`); a statement object used again hits the compiled cache
# straight away.
_NOW, _OWNER, _UNTIL = bindparam("b_now"), bindparam("b_owner"), bindparam("b_until")
_ITEM = bindparam("b_item")
_KEY = (inbox.c.channel == bindparam("b_channel"), inbox.c.tenant == bindparam("b_tenant"),
        inbox.c.message_key == bindparam("b_message_key"))
_THREAD = (conversations.c.channel == bindparam("b_channel"),
           conversations.c.tenant == bindparam("b_tenant"),
           conversations.c.external_id == bindparam("b_external_id"),
           conversations.c.thread_id == bindparam("b_thread_id"))
# Held: being answered, or answered and being delivered. Claimable: waiting, or held by a
# process whose lease expired (it died): an answered one is delivered, not answered again.
_WORKING = or_(inbox.c.status == "processing", inbox.c.status == "answered")  # not IN: its
# expanding parameter would rule out executemany
_CLAIMABLE = or_(inbox.c.status == "pending", and_(_WORKING, inbox.c.lease_until < _NOW))
_HELD = and_(_WORKING, inbox.c.lease_owner == _OWNER)
_STILL_ANSWERED = inbox.c.status == "answered"


def _per_dialect(make: Callable[[Callable[[Table], Any]], Any]) -> dict[str, Any]:
    return {"sqlite": make(sqlite.insert), "postgresql": make(postgresql.insert)}


_CONVERSATION_BY_ID = select(conversations).where(conversations.c.id == bindparam("b_id"))
_CONVERSATION = select(conversations).where(*_THREAD)
_THREAD_KNOWN = select(conversations.c.id).where(*_THREAD).limit(1)
_NEW_CONVERSATION = _per_dialect(lambda ins: ins(conversations).on_conflict_do_nothing(
    index_elements=["channel", "tenant", "external_id", "thread_id"]).returning(conversations))
_NEW_ITEM = _per_dialect(lambda ins: ins(inbox).on_conflict_do_nothing(
    index_elements=["channel", "tenant", "message_key"]).returning(inbox.c.id))
_ITEM_BY_KEY = select(inbox.c.id, inbox.c.status, inbox.c.delivery_key).where(*_KEY)
_ITEM_BY_ID = select(inbox).where(inbox.c.id == _ITEM)
_ITEM_STATUS = select(inbox.c.id, inbox.c.status).where(inbox.c.id == _ITEM)
_PAYLOAD = select(inbox.c.payload).where(inbox.c.id == _ITEM)
_REQUEUE = (
    update(inbox).where(inbox.c.id == _ITEM, inbox.c.status == "failed")
    .values(status=bindparam("b_status"), lease_owner=_OWNER, lease_until=_UNTIL,
            payload=bindparam("b_payload"), updated_at=_NOW)
    .returning(inbox)
)
_NOTIFY = select(func.pg_notify(WORK_CHANNEL, ""))
_CLAIMED = {"status": case((_STILL_ANSWERED, "answered"), else_="processing"),
            "lease_owner": _OWNER, "lease_until": _UNTIL,
            "attempts": inbox.c.attempts + 1, "updated_at": _NOW}
# SKIP LOCKED lets concurrent PostgreSQL claimers pass each other's candidates (SQLite
# drops the clause: its transactions are serial anyway). A MATERIALIZED CTE, not
# `IN (subquery)`: PostgreSQL may plan the subquery on the inner side of a nested loop and
# rescan it for every row, and each rescan skips the rows this UPDATE has just claimed
# and locks the next ones, so the LIMIT bounded nothing (a claim of 3 took all 5 waiting
# items). Materialized, the candidates are chosen and locked once.
_CANDIDATES = (
    select(inbox.c.id).where(_CLAIMABLE).order_by(inbox.c.id).limit(bindparam("b_limit"))
    .with_for_update(skip_locked=True)
    .cte("candidates").prefix_with("MATERIALIZED", dialect="postgresql")
)
_CLAIM_BATCH = (
    update(inbox).where(inbox.c.id.in_(select(_CANDIDATES.c.id)), _CLAIMABLE)
    .values(**_CLAIMED).returning(inbox)
)
# One item: also one the caller holds already (accepted claimed, to answer at once).
_CLAIM_ONE = (
    update(inbox).where(inbox.c.id == _ITEM, or_(_CLAIMABLE, _HELD))
    .values(**_CLAIMED).returning(inbox)
)
_RECENT_TURNS = recent_turns_query(bindparam("b_conversation"), bindparam("b_limit"))
_USER_TURN = (
    select(turns.c.id).where(turns.c.inbox_item_id == _ITEM, turns.c.role == "user").limit(1)
)
# Tool rounds an earlier attempt stored: the model's turns with calls, and the results.
_ROUNDS = (
    select(turns)
    .where(turns.c.inbox_item_id == _ITEM,
           or_(turns.c.role == "tool", turns.c.tool_calls.is_not(None)))
    .order_by(turns.c.id)
)
_NEW_TURNS = sa_insert(turns).returning(turns, sort_by_parameter_order=True)
_NEW_TURN = sa_insert(turns)
_PROFILE = select(profiles).where(profiles.c.id == bindparam("b_id")).with_for_update()
_NEW_PROFILE = _per_dialect(
    lambda ins: ins(profiles).on_conflict_do_nothing(index_elements=["id"]))
_MERGED_PROFILE = update(profiles).where(profiles.c.id == bindparam("b_id"))
_ANSWERED = update(inbox).where(inbox.c.id == _ITEM, _HELD).values(
    status="answered", updated_at=_NOW)
_STILL_HELD = update(inbox).where(inbox.c.id == _ITEM, _HELD,
                                  inbox.c.status == "processing").values(updated_at=_NOW)
_NOTE_REPLY = update(inbox).where(inbox.c.id == _ITEM, _HELD).values(
    reply_id=bindparam("b_reply"), updated_at=_NOW)
_DONE = update(inbox).where(inbox.c.id == _ITEM, _HELD).values(
    status="done", lease_owner=None, lease_until=None, updated_at=_NOW)
_BUMP = update(conversations).where(conversations.c.id == bindparam("b_id")).values(
    updated_at=_NOW)
_TITLE_CHARS = conversations.c.title.type.length or 200
_NAME = update(conversations).where(
    conversations.c.id == bindparam("b_id"), conversations.c.title.is_(None)
).values(title=bindparam("b_title"))
_RENEW = (
    update(inbox).where(inbox.c.id.in_(bindparam("b_ids", expanding=True)), _HELD)
    .values(lease_until=_UNTIL, updated_at=_NOW).returning(inbox.c.id)
)
# Released while answering: waiting again. Released while delivering: still answered, its
# lease ended now, so the next claim delivers it.
_RELEASE = update(inbox).where(inbox.c.id == _ITEM, _HELD).values(
    status=case((_STILL_ANSWERED, "answered"), else_="pending"), lease_owner=None,
    lease_until=case((_STILL_ANSWERED, type_coerce(_NOW, inbox.c.lease_until.type)),
                     else_=None),
    updated_at=_NOW)
_FAIL = update(inbox).where(inbox.c.id == _ITEM, _HELD).values(
    status="failed", last_error=bindparam("b_error"), lease_owner=None, lease_until=None,
    updated_at=_NOW)
# Stopped before anyone started on it: done, nothing to answer. Being answered: marked,
# and its worker ends the answer (one that claims it after a crash too).
_STOP_WAITING = update(inbox).where(inbox.c.id == _ITEM, inbox.c.status == "pending").values(
    status="done", stopped_by=bindparam("b_by"), lease_owner=None, lease_until=None,
    updated_at=_NOW)
_STOP_ANSWERING = update(inbox).where(
    inbox.c.id == _ITEM, inbox.c.status == "processing"
).values(stopped_by=func.coalesce(inbox.c.stopped_by, bindparam("b_by")), updated_at=_NOW)
_STOP_NOTIFY = select(func.pg_notify(STOP_CHANNEL, bindparam("b_payload", type_=String)))
_STOPPED_AMONG = select(inbox.c.id).where(
    inbox.c.id.in_(bindparam("b_ids", expanding=True)), inbox.c.stopped_by.is_not(None))
# The item a conversation is waiting on: its person's turn is stored when it is started.
_UNFINISHED_IN = (
    select(inbox)
    .join(turns, turns.c.inbox_item_id == inbox.c.id)
    .where(turns.c.conversation_id == bindparam("b_conversation"), turns.c.role == "user",
           or_(inbox.c.status == "pending", inbox.c.status == "processing"))
    .order_by(turns.c.id.desc())
    .limit(1)
)
_ANSWER = (
    select(turns)
    .where(turns.c.inbox_item_id == _ITEM, turns.c.role == "assistant",
           turns.c.tool_calls.is_(None))
    .order_by(turns.c.id.desc())
    .limit(1)
)


_REFERENCE_KEY = ["channel", "tenant", "conversation", "thread"]
_NEW_REFERENCE = _per_dialect(lambda ins: (lambda stmt: stmt.on_conflict_do_update(
    index_elements=_REFERENCE_KEY,
    set_={"reference": stmt.excluded.reference, "updated_at": stmt.excluded.updated_at},
))(ins(conversation_references)))
_NEW_SENT = _per_dialect(lambda ins: ins(sent_messages_table).on_conflict_do_nothing(
    index_elements=["channel", "tenant", "conversation", "message_id"]))


def _thread(ref: ConversationRef) -> dict[str, str]:
    return {"b_channel": ref.channel, "b_tenant": ref.tenant,
            "b_external_id": ref.conversation, "b_thread_id": ref.thread or ""}


# ----- accept -----


def accept(conn: Connection, acceptance: Acceptance, now: datetime) -> AcceptOutcome:
    message = acceptance.message
    if acceptance.conversation_id is not None:
        named = conn.execute(
            _CONVERSATION_BY_ID, {"b_id": acceptance.conversation_id}
        ).one_or_none()
        if named is None or named.owner != message.sender.id or (
            named.channel != message.conversation.channel
        ):
            return NotYours()
        message = replace(message, conversation=to_conversation(named).ref)
    elif acceptance.follow_up and not _answers_thread(conn, message.conversation):
        return NotFollowed()

    outcome = _record(conn, message, acceptance, now)
    if acceptance.reference is not None:
        remember_reference(conn, message.conversation, acceptance.reference, now)
    if acceptance.open_conversation:
        stored = message if isinstance(outcome, Recorded) else _stored_message(conn, outcome)
        conversation = conversation_of(conn, stored, now)
        outcome = replace(outcome, conversation_id=conversation.id)
    if isinstance(outcome, Recorded | Requeued) and acceptance.claim is None:
        _wake_workers(conn)
    return outcome


def _answers_thread(conn: Connection, ref: ConversationRef) -> bool:
    return conn.execute(_THREAD_KNOWN, _thread(ref)).first() is not None


def _record(
    conn: Connection, message: InboundMessage, acceptance: Acceptance, now: datetime
) -> Recorded | Requeued | Duplicate:
    # Claimed for the caller, who begins the turn next: `begin_turn` counts the attempt.
    claim = acceptance.claim
    status = "processing" if claim else "pending"
    until = now + claim.lease if claim else None
    key = {"b_channel": message.conversation.channel, "b_tenant": message.conversation.tenant,
           "b_message_key": message.id}
    item_id = conn.execute(_NEW_ITEM[conn.dialect.name], {
        "channel": message.conversation.channel, "tenant": message.conversation.tenant,
        "message_key": message.id, "status": status, "attempts": 0,
        "lease_owner": claim.owner if claim else None, "lease_until": until,
        "delivery_key": acceptance.delivery, "payload": message_to_json(message),
        "created_at": now, "updated_at": now,
    }).scalar_one_or_none()
    if item_id is not None:
        item = InboxItem(id=item_id, message=message, status=status, attempts=0,
                         lease_until=until, lease_owner=claim.owner if claim else None)
        return Recorded(item=item)

    existing = conn.execute(_ITEM_BY_KEY, key).one()
    # A retry of the delivery first recorded (or any redelivery, where the platform has
    # no delivery id) re-queues a failed item; another copy of the message does not.
    retry = existing.delivery_key is None or existing.delivery_key == acceptance.delivery
    if existing.status == "failed" and retry:
        # The message stays as first delivered; how to reach the person is the latest
        # delivery's (the request now waiting, a refreshed service URL).
        stored = conn.execute(_PAYLOAD, {"b_item": existing.id}).scalar_one()
        # Conditional, so two redeliveries racing re-queue the item once.
        row = conn.execute(_REQUEUE, {
            "b_item": existing.id, "b_status": status, "b_owner": claim.owner if claim else None,
            "b_until": until, "b_payload": {**stored, "channel_data": message.channel_data},
            "b_now": now,
        }).one_or_none()
        if row is not None:
            return Requeued(item=to_item(row))
        existing = conn.execute(_ITEM_STATUS, {"b_item": existing.id}).one()
    return Duplicate(item_id=existing.id, status=existing.status)


def _stored_message(conn: Connection, outcome: Requeued | Duplicate) -> InboundMessage:
    if isinstance(outcome, Requeued):
        return outcome.item.message
    row = conn.execute(_ITEM_BY_ID, {"b_item": outcome.item_id}).one()
    return to_item(row).message


def _wake_workers(conn: Connection) -> None:
    if conn.dialect.name == "postgresql":
        # Delivered at COMMIT, so a worker never looks before the item is visible.
        conn.execute(_NOTIFY)


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
    params = {"b_owner": claim.owner, "b_until": now + claim.lease, "b_now": now}
    if item_id is not None:
        claimed = conn.execute(_CLAIM_ONE, {**params, "b_item": item_id})
    else:
        claimed = conn.execute(_CLAIM_BATCH, {**params, "b_limit": limit})
    rows = sorted(claimed.all(), key=lambda r: r.id)
    items = [to_item(row) for row in rows]
    # Answered by a process that died while delivering: delivered, not answered again.
    answers = {item.id: answer_of(conn, item.id) for item in items if item.status == "answered"}
    ready = [item for item in items
             if item.attempts <= max_attempts and answers.get(item.id) is None]
    fresh: set[str] = set()
    conversations_of, profiles_of = _open_in_order(conn, ready, now, fresh)
    # A conversation created here has no earlier turns, unless two items of this batch
    # share it (the second reads the first's).
    shared = Counter(c.id for c in conversations_of.values())
    starts: list[TurnStart] = []
    for item in items:
        if item.attempts > max_attempts:
            starts.append(Exhausted(item=item))
            continue
        if (answer := answers.get(item.id)) is not None:
            starts.append(Answered(item=item, answer=answer))
            continue
        conversation = conversations_of[item.id]
        empty = conversation.id in fresh and shared[conversation.id] == 1
        starts.append(_start(conn, item, conversation, profiles_of[item.id], now,
                             history=0 if empty else history, count=count))
    return starts


def _open_in_order(
    conn: Connection, items: Sequence[InboxItem], now: datetime, fresh: set[str]
) -> tuple[dict[int, Conversation], dict[int, Profile | None]]:
    """Get or create the batch's conversations (in key order), then merge its senders'
    profiles (in id order, each sender's items in turn).

    The order is the same in every transaction, so concurrent PostgreSQL batches cannot
    deadlock: a batch waits on another's not yet committed conversation or profile row,
    and taken in item order, one batch could hold a new conversation the other waits for
    while it waits for a profile the other inserted (seen with three claimers).
    The ids of conversations created here go into `fresh`.
    """
    conversations: dict[int, Conversation] = {}
    by_thread = sorted(
        items, key=lambda i: (tuple(conversation_key(i.message.conversation).values()), i.id)
    )
    for item in by_thread:
        message = item.message
        owner = message.sender.id if message.is_direct else None
        conversations[item.id], created = _conversation(conn, message.conversation, owner, now)
        if created:
            fresh.add(conversations[item.id].id)
    profiles: dict[int, Profile | None] = {}
    for item in sorted(items, key=lambda i: (i.message.sender.id, i.id)):
        profiles[item.id] = _sender_profile(conn, item.message.sender, now)
    return conversations, profiles


def _start(
    conn: Connection, item: InboxItem, conversation: Conversation, profile: Profile | None,
    now: datetime, *, history: int, count: Callable[[NewTurn], int],
) -> Started:
    message = item.message
    recent = conn.execute(
        _RECENT_TURNS, {"b_conversation": conversation.id, "b_limit": history + 1}
    ).all() if history else []
    earlier = [to_turn(r) for r in reversed(recent) if r.inbox_item_id != item.id]
    # Not `[-history:]`: with history=0 that is the whole list (the turn read above).
    earlier = earlier[max(len(earlier) - history, 0):]
    # Only a retry can find its own turn: an earlier attempt stored it, then died.
    rounds: tuple[Turn, ...] = ()
    if item.attempts <= 1 or not _has_user_turn(conn, item.id):
        turn = NewTurn(role="user", content=message.text, inbox_item_id=item.id)
        counted = replace(turn, tokens=count(turn))
        conn.execute(_NEW_TURN, turn_values(conversation.id, counted, now))
    else:
        rounds = tuple(to_turn(r) for r in conn.execute(_ROUNDS, {"b_item": item.id}))
    return Started(item=_with_groups(conn, item, profile), conversation=conversation,
                   history=tuple(earlier), profile=profile, rounds=rounds)


def _with_groups(conn: Connection, item: InboxItem, profile: Profile | None) -> InboxItem:
    """The sender as a member of their groups kept in SQL (by id, or by the verified email
    the channel told now or before), besides any the channel itself gave: read here, in
    the unit that opens the turn anyway, so access lists and the ticket agent role see
    them in every channel for one indexed query and no cache to go stale."""
    sender = item.message.sender
    email = sender.email or (profile.email if profile else None)
    stored = sender_groups(conn, sender.id, email)
    if set(stored) <= set(sender.groups):
        return item
    groups = tuple(sorted({*sender.groups, *stored}))
    message = replace(item.message, sender=replace(sender, groups=groups))
    return replace(item, message=message)


def _has_user_turn(conn: Connection, item_id: int) -> bool:
    return conn.execute(_USER_TURN, {"b_item": item_id}).first() is not None


def conversation_of(conn: Connection, message: InboundMessage, now: datetime) -> Conversation:
    """Private threads (DMs, web, terminal) belong to their sender; shared ones to nobody."""
    owner = message.sender.id if message.is_direct else None
    return get_or_create_conversation(conn, message.conversation, owner, now)


def get_or_create_conversation(
    conn: Connection, ref: ConversationRef, owner: str | None, now: datetime
) -> Conversation:
    return _conversation(conn, ref, owner, now)[0]


def _conversation(
    conn: Connection, ref: ConversationRef, owner: str | None, now: datetime
) -> tuple[Conversation, bool]:
    """The thread's conversation, and whether this transaction created it."""
    thread = _thread(ref)
    row = conn.execute(_CONVERSATION, thread).one_or_none()
    if row is not None:
        return to_conversation(row), False
    # Insert-or-nothing: concurrent callers all end up with the one row.
    row = conn.execute(_NEW_CONVERSATION[conn.dialect.name], {
        "id": uuid.uuid4().hex, "owner": owner, "created_at": now, "updated_at": now,
        **conversation_key(ref),
    }).one_or_none()
    if row is not None:
        return to_conversation(row), True
    return to_conversation(conn.execute(_CONVERSATION, thread).one()), False


def _sender_profile(conn: Connection, sender: Sender, now: datetime) -> Profile | None:
    """Merge what the channel told about the sender into the stored profile (written only
    when that changes something) and return the result."""
    told = Profile(id=sender.id, name=sender.name, email=sender.email,
                   time_zone=sender.time_zone)
    # The row lock (PostgreSQL) makes concurrent turns of one person merge in turn.
    who = {"b_id": sender.id}
    row = conn.execute(_PROFILE, who).one_or_none()
    if row is None:
        if told == Profile(id=sender.id):
            return None
        fresh = {**profile_values(told), "id": told.id, "updated_at": now}
        if conn.execute(_NEW_PROFILE[conn.dialect.name], fresh).rowcount == 1:
            return told
        row = conn.execute(_PROFILE, who).one()  # another turn of theirs inserted it meanwhile
    current = to_profile(row)
    merged = current.merged(told)
    if merged != current:
        conn.execute(_MERGED_PROFILE, {**who, **profile_values(merged), "updated_at": now})
    return merged


# ----- finish_turn -----


def finish_turn(conn: Connection, end: TurnEnd, now: datetime) -> list[Turn]:
    answered = conn.execute(
        _ANSWERED, {"b_item": end.item_id, "b_owner": end.owner, "b_now": now}
    )
    if answered.rowcount != 1:
        raise LeaseLost(f"inbox item {end.item_id} is no longer held by {end.owner}")
    stored = add_turns(conn, end.conversation_id, end.turns, now)
    if end.title:  # after add_turns, which locks the conversation's row (PostgreSQL)
        conn.execute(_NAME, {"b_id": end.conversation_id, "b_title": end.title[:_TITLE_CHARS]})
    return stored


def record_round(conn: Connection, end: TurnEnd, now: datetime) -> list[Turn]:
    """One tool round of an item still being answered by `end.owner`."""
    held = conn.execute(_STILL_HELD, {"b_item": end.item_id, "b_owner": end.owner, "b_now": now})
    if held.rowcount != 1:
        raise LeaseLost(f"inbox item {end.item_id} is no longer held by {end.owner}")
    return add_turns(conn, end.conversation_id, end.turns, now)


def note_replies(
    conn: Connection, notes: Sequence[tuple[int, str, str]], now: datetime
) -> set[tuple[int, str, str]]:
    """The messages showing these items' answers (item id, platform message id, owner),
    kept for the items their owner still holds; which were."""
    kept = set()
    for note in notes:
        item_id, reply_id, owner = note
        params = {"b_item": item_id, "b_reply": reply_id, "b_owner": owner, "b_now": now}
        if conn.execute(_NOTE_REPLY, params).rowcount == 1:
            kept.add(note)
    return kept


def finish_deliveries(
    conn: Connection, held: Sequence[tuple[int, str]], now: datetime
) -> set[tuple[int, str]]:
    """Mark delivered the items (item id, lease owner) still held by that owner; which."""
    done = set()
    for item_id, owner in held:
        params = {"b_item": item_id, "b_owner": owner, "b_now": now}
        if conn.execute(_DONE, params).rowcount == 1:
            done.add((item_id, owner))
    return done


def add_turns(
    conn: Connection, conversation_id: str, new: Sequence[NewTurn], now: datetime
) -> list[Turn]:
    """Append turns and bump the conversation. Bumping first also locks its row
    (PostgreSQL), so concurrent batches for one thread commit one after the other."""
    if not new:
        return []
    if conn.execute(_BUMP, {"b_id": conversation_id, "b_now": now}).rowcount != 1:
        raise StorageError(f"conversation {conversation_id} does not exist")
    rows = conn.execute(_NEW_TURNS, [turn_values(conversation_id, t, now) for t in new]).all()
    return [to_turn(row) for row in rows]


# ----- how to reach a conversation, and what was sent there -----


def remember_reference(
    conn: Connection, where: ConversationRef, reference: dict[str, Any], now: datetime
) -> None:
    """The latest way to reach a conversation unprompted (a Teams conversation
    reference), for notices."""
    conn.execute(_NEW_REFERENCE[conn.dialect.name], {
        "channel": where.channel, "tenant": where.tenant, "conversation": where.conversation,
        "thread": where.thread or "", "reference": reference, "updated_at": now,
    })


def remember_sent(
    conn: Connection, where: ConversationRef, message_id: str, turn_id: int, now: datetime
) -> None:
    """Which answer a message the bot sent carried (Teams' feedback names the message)."""
    conn.execute(_NEW_SENT[conn.dialect.name], {
        "channel": where.channel, "tenant": where.tenant, "conversation": where.conversation,
        "message_id": message_id, "turn_id": turn_id, "created_at": now,
    })


# ----- leases -----


def renew(conn: Connection, item_ids: Sequence[int], claim: Claim, now: datetime) -> set[int]:
    params = {"b_ids": list(item_ids), "b_owner": claim.owner, "b_until": now + claim.lease,
              "b_now": now}
    return set(conn.execute(_RENEW, params).scalars())


def release(conn: Connection, item_id: int, owner: str, now: datetime) -> bool:
    # The attempt stays counted: it may have stored the person's turn already.
    params = {"b_item": item_id, "b_owner": owner, "b_now": now}
    return conn.execute(_RELEASE, params).rowcount == 1


def fail(conn: Connection, item_id: int, owner: str, error: str, now: datetime) -> bool:
    params = {"b_item": item_id, "b_owner": owner, "b_error": error[:_ERROR_LENGTH],
              "b_now": now}
    return conn.execute(_FAIL, params).rowcount == 1


# ----- stopping -----


def request_stop(conn: Connection, item_id: int, by: str, now: datetime) -> ItemStatus | None:
    """Mark the item stopped by `by` if it is waiting (then it is done) or being answered
    (then its worker is told: at COMMIT, on PostgreSQL); the status it had, or None. Each
    update checks the status itself: no read before them."""
    params = {"b_item": item_id, "b_by": by, "b_now": now}
    if conn.execute(_STOP_WAITING, params).rowcount == 1:
        return "pending"
    if conn.execute(_STOP_ANSWERING, params).rowcount == 1:
        if conn.dialect.name == "postgresql":
            conn.execute(_STOP_NOTIFY, {"b_payload": str(item_id)})
        return "processing"
    return None


def stopped_among(conn: Connection, item_ids: Sequence[int]) -> set[int]:
    return set(conn.execute(_STOPPED_AMONG, {"b_ids": list(item_ids)}).scalars())


def unfinished_in(conn: Connection, conversation_id: str) -> InboxItem | None:
    row = conn.execute(_UNFINISHED_IN, {"b_conversation": conversation_id}).first()
    return None if row is None else to_item(row)


# ----- reads -----


def get_item(conn: Connection, item_id: int) -> InboxItem | None:
    row = conn.execute(_ITEM_BY_ID, {"b_item": item_id}).one_or_none()
    return None if row is None else to_item(row)


def find_item(conn: Connection, channel: str, tenant: str, message_id: str) -> InboxItem | None:
    query = select(inbox).where(
        inbox.c.channel == channel, inbox.c.tenant == tenant, inbox.c.message_key == message_id
    )
    row = conn.execute(query).one_or_none()
    return None if row is None else to_item(row)


def answer_of(conn: Connection, item_id: int) -> Turn | None:
    """The final answer stored for an item (its last assistant turn without tool calls)."""
    row: Row[Any] | None = conn.execute(_ANSWER, {"b_item": item_id}).one_or_none()
    return None if row is None else to_turn(row)
