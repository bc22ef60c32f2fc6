"""The answer path's units of work — accept, begin_turn, finish_turn — and the leases, on
SQLite (the writer thread), PostgreSQL and the in-memory fakes (`tests/fakes/stores.py`),
which these same tests keep honest. Tests about SQL itself (transactions, group commit)
are `@sql_only` or `@sqlite_only`."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Connection, select
from sqlalchemy.engine import make_url

from adapters.sql import writer as writer_module
from adapters.sql.engine import Executor
from adapters.sql.groups import SqlGroupStore
from adapters.sql.tables import deliveries
from adapters.sql.units import insert
from adapters.sql.writer import SqliteWriter
from core.errors import StorageError
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
    TurnEnd,
    TurnStart,
)
from core.messages import Attachment, Citation, ConversationRef, InboundMessage, Sender
from core.model import ToolCall
from core.ports import Inbox
from core.profiles import Profile
from core.threads import NewTurn
from tests.adapters.sql.conftest import ALL_BACKENDS, Clock, Database, Storage, sql_only


@pytest.fixture(params=ALL_BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """Every test here runs on SQLite, PostgreSQL and the in-memory stores."""
    kind: str = request.param
    return kind


# Inherently about SQLite's writer thread (group commit): neither PostgreSQL nor the fakes.
sqlite_only = pytest.mark.parametrize("backend", ["sqlite"])

LEASE = timedelta(minutes=5)
WORKER = Claim(owner="worker-1", lease=LEASE)
OTHER = Claim(owner="worker-2", lease=LEASE)
WEB = Claim(owner="web-1", lease=LEASE)

ADA_SLACK = Sender(id="slack:T1:U1", name="Ada", email="ada@example.com", groups=("eng",),
                   time_zone="Europe/London")
ADA_WEB = Sender(id="web:local:ada", name="Ada")
GRACE_WEB = Sender(id="web:local:grace", name="Grace")


def slack(
    message_id: str = "1700.0001", *, tenant: str = "T1", thread: str = "1700.0000",
    text: str = "Where is the leave policy?", sender: Sender = ADA_SLACK,
    is_direct: bool = False, channel_data: dict[str, Any] | None = None,
) -> InboundMessage:
    return InboundMessage(
        id=message_id,
        conversation=ConversationRef(channel="slack", tenant=tenant, conversation="C1",
                                     thread=thread),
        sender=sender,
        text=text,
        sent_at=datetime(2025, 3, 1, 11, 59, tzinfo=UTC),
        is_direct=is_direct,
        attachments=(Attachment(name="a.pdf", content_type="application/pdf", size=3),),
        channel_data={"team": tenant, "blocks": [{"type": "rich_text"}]}
        if channel_data is None else channel_data,
    )


def web(message_id: str, *, page: str = "page-1", sender: Sender = ADA_WEB,
        text: str = "hello") -> InboundMessage:
    return InboundMessage(
        id=message_id,
        conversation=ConversationRef(channel="web", tenant="local", conversation=page),
        sender=sender,
        text=text,
        sent_at=datetime(2025, 3, 1, 11, 59, tzinfo=UTC),
        is_direct=True,
    )


async def recorded(inbox: Inbox, what: InboundMessage | Acceptance) -> InboxItem:
    acceptance = what if isinstance(what, Acceptance) else Acceptance(message=what)
    outcome = await inbox.accept(acceptance)
    assert isinstance(outcome, Recorded), outcome
    return outcome.item


async def begun(inbox: Inbox, item_id: int, claim: Claim = WORKER) -> Started:
    start = await inbox.begin_turn(item_id, claim)
    assert isinstance(start, Started), start
    return start


async def failed(inbox: Inbox, acceptance: Acceptance, claim: Claim = WEB) -> InboxItem:
    """Accepted, begun, and failed: waiting for a redelivery to retry it."""
    item = await recorded(inbox, Acceptance(
        message=acceptance.message, delivery=acceptance.delivery, claim=claim))
    await begun(inbox, item.id, claim)
    assert await inbox.fail(item.id, owner=claim.owner, error="boom")
    stored = await inbox.get(item.id)
    assert stored is not None and stored.status == "failed"
    return stored


def answer(start: TurnStart, text: str, claim: Claim = WORKER) -> TurnEnd:
    assert isinstance(start, Started)
    return TurnEnd(
        item_id=start.item.id, owner=claim.owner, conversation_id=start.conversation.id,
        turns=(NewTurn(role="assistant", content=text, inbox_item_id=start.item.id),),
    )


async def answered(inbox: Inbox, message: InboundMessage, text: str) -> Started:
    start = await begun(inbox, (await recorded(inbox, message)).id)
    await inbox.finish_turn(answer(start, text))
    return start


def after_the_lease(clock: Clock) -> None:
    clock.advance(LEASE + timedelta(seconds=1))


# ----- accept -----


async def test_a_first_delivery_is_recorded_pending(inbox: Inbox) -> None:
    item = await recorded(inbox, slack())

    assert (item.status, item.attempts, item.lease_until, item.last_error) == (
        "pending", 0, None, None)
    assert item.message == slack()
    assert await inbox.get(item.id) == item


async def test_a_second_delivery_of_a_waiting_running_or_answered_message_is_a_duplicate(
    inbox: Inbox,
) -> None:
    item = await recorded(inbox, slack())
    assert await inbox.accept(Acceptance(message=slack())) == Duplicate(
        item_id=item.id, status="pending")

    start = await begun(inbox, item.id)
    assert await inbox.accept(Acceptance(message=slack())) == Duplicate(
        item_id=item.id, status="processing")

    await inbox.finish_turn(answer(start, "Here."))
    assert await inbox.accept(Acceptance(message=slack())) == Duplicate(
        item_id=item.id, status="answered")

    assert await inbox.finish_delivery(item.id, owner=WORKER.owner)
    assert await inbox.accept(Acceptance(message=slack())) == Duplicate(
        item_id=item.id, status="done")


async def test_concurrent_deliveries_of_one_message_record_it_once(storage: Storage) -> None:
    # Two inboxes on their own executors: two processes sharing the database.
    inboxes = [storage.inbox(), storage.inbox(other_process=True)]
    barrier = asyncio.Barrier(20)

    async def deliver(n: int) -> object:
        await barrier.wait()
        return await inboxes[n % 2].accept(Acceptance(message=slack()))

    outcomes = await asyncio.gather(*(deliver(n) for n in range(20)))

    firsts = [o for o in outcomes if isinstance(o, Recorded)]
    assert len(firsts) == 1
    assert all(o == Duplicate(item_id=firsts[0].item.id, status="pending")
               for o in outcomes if o is not firsts[0])
    assert await storage.count("inbox") == 1


async def test_the_same_message_id_in_another_tenant_is_another_message(inbox: Inbox) -> None:
    first = await recorded(inbox, slack(tenant="T1"))
    second = await recorded(inbox, slack(tenant="T2"))
    assert first.id != second.id


async def test_a_retry_of_the_recorded_delivery_requeues_a_failed_item(inbox: Inbox) -> None:
    item = await failed(inbox, Acceptance(message=slack(), delivery="Ev1"))

    outcome = await inbox.accept(Acceptance(message=slack(), delivery="Ev1"))

    assert isinstance(outcome, Requeued)
    assert (outcome.item.id, outcome.item.status, outcome.item.lease_until) == (
        item.id, "pending", None)
    assert (outcome.item.attempts, outcome.item.last_error) == (1, "boom")
    [again] = await inbox.begin_turns(WORKER, limit=10)
    assert (again.item.id, again.item.attempts) == (item.id, 2)


async def test_another_delivery_of_a_failed_message_is_a_duplicate(inbox: Inbox) -> None:
    # Slack delivers one mention twice (app_mention, message.channels): the second copy
    # must not retry what the first delivery's retry will.
    item = await failed(inbox, Acceptance(message=slack(), delivery="Ev1"))

    assert await inbox.accept(Acceptance(message=slack(), delivery="Ev2")) == Duplicate(
        item_id=item.id, status="failed")
    assert await inbox.accept(Acceptance(message=slack())) == Duplicate(
        item_id=item.id, status="failed")
    assert await inbox.get(item.id) == item


async def test_any_redelivery_requeues_a_failed_item_recorded_without_a_delivery_id(
    inbox: Inbox,
) -> None:
    first = await failed(inbox, Acceptance(message=slack("m1")))
    second = await failed(inbox, Acceptance(message=slack("m2")))

    assert isinstance(await inbox.accept(Acceptance(message=slack("m1"))), Requeued)
    again = await inbox.accept(Acceptance(message=slack("m2"), delivery="Ev9"))
    assert isinstance(again, Requeued) and again.item.id == second.id
    assert {i.status for i in [await inbox.get(first.id), await inbox.get(second.id)]
            if i is not None} == {"pending"}


async def test_concurrent_retries_of_a_failed_item_requeue_it_once(storage: Storage) -> None:
    inboxes = [storage.inbox(), storage.inbox(other_process=True)]
    item = await failed(inboxes[0], Acceptance(message=slack(), delivery="Ev1"))
    barrier = asyncio.Barrier(10)

    async def retry(n: int) -> object:
        await barrier.wait()
        return await inboxes[n % 2].accept(Acceptance(message=slack(), delivery="Ev1"))

    outcomes = await asyncio.gather(*(retry(n) for n in range(10)))

    assert sum(isinstance(o, Requeued) for o in outcomes) == 1
    assert outcomes.count(Duplicate(item_id=item.id, status="pending")) == 9


async def test_a_requeued_item_keeps_its_first_text_and_takes_the_new_channel_data(
    inbox: Inbox,
) -> None:
    first = slack(text="first words", channel_data={"response_url": "https://one"})
    item = await failed(inbox, Acceptance(message=first))
    redelivered = slack(text="edited words", channel_data={"response_url": "https://two"})

    outcome = await inbox.accept(Acceptance(message=redelivered))

    assert isinstance(outcome, Requeued)
    assert outcome.item.message.text == "first words"
    assert outcome.item.message.channel_data == {"response_url": "https://two"}
    assert await inbox.get(item.id) == outcome.item


async def test_a_retry_with_a_claim_holds_the_requeued_item_for_the_caller(
    inbox: Inbox, clock: Clock
) -> None:
    item = await failed(inbox, Acceptance(message=web("w1")))
    retry_claim = Claim(owner="web-2", lease=LEASE)

    outcome = await inbox.accept(Acceptance(message=web("w1"), claim=retry_claim))

    assert isinstance(outcome, Requeued)
    assert (outcome.item.status, outcome.item.lease_until) == ("processing", clock.now() + LEASE)
    assert await inbox.begin_turns(WORKER, limit=10) == []
    start = await begun(inbox, item.id, retry_claim)
    assert start.item.attempts == 2


async def test_a_follow_up_in_a_thread_the_bot_does_not_answer_is_not_followed(
    storage: Storage, inbox: Inbox
) -> None:
    assert await inbox.accept(Acceptance(message=slack(), follow_up=True)) == NotFollowed()

    assert await storage.count("inbox") == 0
    assert await inbox.find(channel="slack", tenant="T1", message_id=slack().id) is None


async def test_a_follow_up_in_a_thread_the_bot_answers_is_recorded(inbox: Inbox) -> None:
    await answered(inbox, slack("m1", thread="th-1"), "Hello.")

    follow_up = await inbox.accept(Acceptance(message=slack("m2", thread="th-1"), follow_up=True))
    elsewhere = await inbox.accept(Acceptance(message=slack("m3", thread="th-2"), follow_up=True))

    assert isinstance(follow_up, Recorded) and follow_up.item.message.id == "m2"
    assert elsewhere == NotFollowed()


async def test_how_to_reach_a_conversation_is_kept_with_the_message(
    storage: Storage, inbox: Inbox
) -> None:
    thread = slack("r1", thread="th-9")
    await inbox.accept(Acceptance(message=thread, reference={"serviceUrl": "https://one"}))
    await inbox.accept(Acceptance(message=slack("r2", thread="th-9"),
                                  reference={"serviceUrl": "https://two"}))
    await inbox.accept(Acceptance(message=slack("r3", thread="th-9")))  # nothing to keep

    assert await storage.references.get(thread.conversation) == {"serviceUrl": "https://two"}


async def test_naming_someone_elses_or_an_unknown_conversation_is_not_yours(
    storage: Storage, inbox: Inbox
) -> None:
    graces = await inbox.accept(
        Acceptance(message=web("g1", sender=GRACE_WEB), open_conversation=True))
    assert graces.conversation_id is not None  # type: ignore[union-attr]
    adas_slack_dm = (await answered(inbox, slack("s1", is_direct=True), "Hi.")).conversation
    before = await storage.count("inbox")

    for named in (graces.conversation_id, "0" * 32, adas_slack_dm.id):  # type: ignore[union-attr]
        sender = ADA_SLACK if named == adas_slack_dm.id else ADA_WEB
        message = web("a1", sender=sender)
        outcome = await inbox.accept(Acceptance(message=message, conversation_id=named))
        assert outcome == NotYours(), named  # the last: Ada's, but on another channel

    assert await storage.count("inbox") == before
    assert await inbox.find(channel="web", tenant="local", message_id="a1") is None


async def test_naming_ones_own_conversation_records_the_message_there(
    storage: Storage, inbox: Inbox
) -> None:
    opened = await inbox.accept(Acceptance(message=web("w1", page="page-1"),
                                           open_conversation=True))
    assert opened.conversation_id is not None  # type: ignore[union-attr]
    conversation = await storage.conversations.get(opened.conversation_id)  # type: ignore[union-attr]
    assert conversation is not None

    item = await recorded(inbox, Acceptance(message=web("w2", page="another-page"),
                                            conversation_id=conversation.id))

    assert item.message.conversation == conversation.ref
    assert (await begun(inbox, item.id)).conversation.id == conversation.id
    assert await storage.count("conversations") == 1


async def test_opening_the_conversation_says_which_it_is_even_for_a_duplicate(
    storage: Storage, inbox: Inbox
) -> None:
    first = await inbox.accept(Acceptance(message=web("w1", page="page-1"),
                                          open_conversation=True))
    assert isinstance(first, Recorded) and first.conversation_id is not None
    conversation = await storage.conversations.get(first.conversation_id)
    assert conversation is not None
    assert (conversation.ref.conversation, conversation.owner) == ("page-1", ADA_WEB.id)

    # The same message again, from a page that would open another conversation: it is
    # the conversation the message was first sent to.
    again = await inbox.accept(Acceptance(message=web("w1", page="page-2"),
                                          open_conversation=True))
    plain = await inbox.accept(Acceptance(message=web("w1", page="page-2")))

    assert again == Duplicate(item_id=first.item.id, status="pending",
                              conversation_id=first.conversation_id)
    assert plain == Duplicate(item_id=first.item.id, status="pending")
    assert await storage.count("conversations") == 1


async def test_accepting_with_a_claim_holds_the_item_until_its_caller_begins_it(
    inbox: Inbox, clock: Clock
) -> None:
    item = await recorded(inbox, Acceptance(message=web("w1"), claim=WEB))

    assert (item.status, item.attempts, item.lease_until) == (
        "processing", 0, clock.now() + LEASE)
    assert await inbox.begin_turns(WORKER, limit=10) == []
    assert await inbox.begin_turn(item.id, WORKER) is None

    start = await begun(inbox, item.id, WEB)
    assert (start.item.status, start.item.attempts) == ("processing", 1)


async def test_a_zero_lease_still_claims(inbox: Inbox) -> None:
    # timedelta(0) is falsy: holding must not depend on truthiness.
    item = await recorded(inbox, Acceptance(message=web("w1"),
                                            claim=Claim(owner="web-1", lease=timedelta(0))))
    assert item.status == "processing"


# ----- begin_turn -----


async def test_items_begin_oldest_first_up_to_the_limit(inbox: Inbox, clock: Clock) -> None:
    ids = [(await recorded(inbox, slack(f"m{n}"))).id for n in range(5)]

    starts = await inbox.begin_turns(WORKER, limit=3)

    assert [s.item.id for s in starts] == ids[:3]
    assert all(isinstance(s, Started) for s in starts)
    assert all((s.item.status, s.item.attempts, s.item.lease_until) == (
        "processing", 1, clock.now() + LEASE) for s in starts)
    assert [s.item.id for s in await inbox.begin_turns(OTHER, limit=10)] == ids[3:]
    assert await inbox.begin_turns(OTHER, limit=10) == []


async def test_concurrent_claimers_never_start_the_same_item(storage: Storage) -> None:
    first = storage.inbox()
    # Threads and senders interleaved: concurrent batches create the same conversations
    # and profiles, in different item orders.
    senders = [ADA_SLACK, Sender(id="slack:T1:U2", name="Grace")]
    ids = {(await recorded(first, slack(f"m{n}", thread=f"th-{n % 3}", sender=senders[n % 2])))
           .id for n in range(30)}
    # Each worker on its own executor, as separate processes would be (on SQLite, writers
    # with their own connections, contending for the file lock).
    workers = [first, storage.inbox(other_process=True), storage.inbox(other_process=True)]
    barrier = asyncio.Barrier(len(workers))

    async def work(n: int) -> list[int]:
        claim = Claim(owner=f"worker-{n}", lease=LEASE)
        await barrier.wait()
        mine: list[int] = []
        while starts := await workers[n].begin_turns(claim, limit=4):
            mine += [s.item.id for s in starts]
        return mine

    claims = await asyncio.gather(*(work(n) for n in range(len(workers))))

    everything = [item_id for mine in claims for item_id in mine]
    assert sorted(everything) == sorted(ids)  # each item started exactly once
    assert await storage.count("turns") == 30  # and each person's turn stored once
    assert await storage.count("conversations") == 3


async def test_an_expired_lease_is_claimed_again_and_counts_another_attempt(
    inbox: Inbox, clock: Clock
) -> None:
    item = await recorded(inbox, slack())
    await begun(inbox, item.id, WORKER)

    clock.advance(LEASE - timedelta(seconds=1))
    assert await inbox.begin_turns(OTHER, limit=10) == []
    clock.advance(timedelta(seconds=2))
    [taken] = await inbox.begin_turns(OTHER, limit=10)

    assert isinstance(taken, Started)
    assert (taken.item.id, taken.item.attempts, taken.item.lease_until) == (
        item.id, 2, clock.now() + LEASE)
    assert await inbox.renew([item.id], WORKER) == set()  # the first worker lost it
    assert await inbox.get(item.id) == taken.item


async def test_begin_turn_takes_one_pending_or_expired_item(inbox: Inbox, clock: Clock) -> None:
    item = await recorded(inbox, slack())
    other = await recorded(inbox, slack("m2"))

    start = await begun(inbox, item.id, WEB)
    assert start.item.attempts == 1
    assert await inbox.begin_turn(item.id, OTHER) is None  # held by web-1
    after_the_lease(clock)
    again = await begun(inbox, item.id, OTHER)
    assert again.item.attempts == 2
    assert await inbox.begin_turn(10**9, OTHER) is None
    still = await inbox.get(other.id)
    assert still is not None and still.status == "pending"  # just the one asked for


async def test_an_item_that_failed_too_often_is_exhausted(
    storage: Storage, clock: Clock
) -> None:
    inbox = storage.inbox(max_attempts=2)
    item = await recorded(inbox, slack())
    for _ in range(2):
        await begun(inbox, item.id, WORKER)
        after_the_lease(clock)

    [start] = await inbox.begin_turns(OTHER, limit=10)

    assert start == Exhausted(item=InboxItem(
        id=item.id, message=item.message, status="processing", attempts=3,
        lease_until=clock.now() + LEASE, lease_owner=OTHER.owner))
    # The worker apologises and gives it up: failed, retried only on redelivery.
    assert await inbox.fail(item.id, owner=OTHER.owner, error="too many attempts")
    assert await inbox.begin_turns(OTHER, limit=10) == []


async def test_the_persons_turn_is_stored_once_when_a_crashed_attempt_is_retried(
    storage: Storage, inbox: Inbox, clock: Clock
) -> None:
    item = await recorded(inbox, slack())
    first = await begun(inbox, item.id, WORKER)
    # The worker died between begin and finish; another one takes the item over.
    after_the_lease(clock)
    second = await begun(inbox, item.id, OTHER)
    # It is given back (shutdown) and taken once more.
    assert await inbox.release(item.id, owner=OTHER.owner)
    third = await begun(inbox, item.id, WORKER)

    assert (second.item.attempts, third.item.attempts) == (2, 3)
    assert first.conversation == second.conversation == third.conversation
    turns = await storage.conversations.recent_turns(first.conversation.id, 10)
    assert [(t.role, t.content, t.inbox_item_id) for t in turns] == [
        ("user", "Where is the leave policy?", item.id)]


async def test_the_persons_turn_is_stored_with_its_token_count(storage: Storage) -> None:
    inbox = storage.inbox(count=lambda turn: len(turn.content))
    start = await begun(inbox, (await recorded(inbox, slack(text="twelve chars"))).id)

    [turn] = await storage.conversations.recent_turns(start.conversation.id, 10)
    assert (turn.role, turn.content, turn.tokens, turn.inbox_item_id) == (
        "user", "twelve chars", 12, start.item.id)


async def test_history_comes_oldest_first_bounded_and_without_this_items_turns(
    storage: Storage, clock: Clock
) -> None:
    inbox = storage.inbox(history=3)
    for n in (1, 2, 3):
        await answered(inbox, slack(f"m{n}", text=f"question {n}"), f"answer {n}")
        clock.advance(timedelta(seconds=1))
    other_thread = await answered(inbox, slack("x1", thread="elsewhere"), "not this one")
    assert other_thread.history == ()

    item = await recorded(inbox, slack("m4", text="question 4"))
    start = await begun(inbox, item.id, WORKER)
    # After a crash, the retry must not see its own turn (stored by the first attempt)
    # as history: it is the message being answered.
    after_the_lease(clock)
    retry = await begun(inbox, item.id, OTHER)

    expected = [("assistant", "answer 2"), ("user", "question 3"), ("assistant", "answer 3")]
    assert [(t.role, t.content) for t in start.history] == expected
    assert [(t.role, t.content) for t in retry.history] == expected


async def test_no_history_is_read_when_none_is_asked_for(storage: Storage) -> None:
    inbox = storage.inbox(history=0)
    await answered(inbox, slack("m1"), "answer 1")

    start = await begun(inbox, (await recorded(inbox, slack("m2"))).id)

    assert start.history == ()


async def test_the_senders_profile_is_created_from_what_the_message_tells(
    storage: Storage, inbox: Inbox
) -> None:
    start = await begun(inbox, (await recorded(inbox, slack())).id)

    told = Profile(id=ADA_SLACK.id, name="Ada", email="ada@example.com",
                   time_zone="Europe/London")
    assert start.profile == told
    assert await storage.profiles.get(ADA_SLACK.id) == told


async def test_what_the_sender_tells_is_merged_into_the_stored_profile(
    storage: Storage, inbox: Inbox
) -> None:
    await storage.profiles.upsert(Profile(
        id=ADA_SLACK.id, name="A. Lovelace", title="Analyst", department="Engines",
        time_zone="Europe/Paris", preferences={"language": "en"}))
    sender = Sender(id=ADA_SLACK.id, name="Ada", email="ada@example.com")

    start = await begun(inbox, (await recorded(inbox, slack(sender=sender))).id)

    merged = Profile(id=ADA_SLACK.id, name="Ada", email="ada@example.com", title="Analyst",
                     department="Engines", time_zone="Europe/Paris",
                     preferences={"language": "en"})
    assert start.profile == merged
    assert await storage.profiles.get(ADA_SLACK.id) == merged


async def test_a_profile_is_written_only_when_the_message_changes_it(
    storage: Storage, inbox: Inbox, clock: Clock
) -> None:
    await answered(inbox, slack("m1"), "One.")
    written = clock.now()
    clock.advance(timedelta(hours=1))

    await answered(inbox, slack("m2"), "Two.")  # the sender tells the same again
    assert await storage.profile_written_at(ADA_SLACK.id) == written

    clock.advance(timedelta(hours=1))
    moved = Sender(id=ADA_SLACK.id, name="Ada", time_zone="America/New_York")
    start = await begun(inbox, (await recorded(inbox, slack("m3", sender=moved))).id)
    assert await storage.profile_written_at(ADA_SLACK.id) == clock.now()
    assert start.profile is not None
    assert (start.profile.email, start.profile.time_zone) == (
        "ada@example.com", "America/New_York")


@sql_only
async def test_a_turn_begins_with_the_senders_groups_by_id_or_by_a_known_email(
    storage: Storage, inbox: Inbox
) -> None:
    assert storage.engine is not None
    groups = SqlGroupStore(storage.engine)
    await groups.add("finance", [ADA_SLACK.id])
    await groups.add("legal", ["ada@example.com"])
    await groups.add("hr", ["slack:T1:U9"])

    told = await begun(inbox, (await recorded(inbox, slack("m1"))).id)
    # Next time the channel tells no email: the one it told before still counts.
    quiet = Sender(id=ADA_SLACK.id, name="Ada")
    known = await begun(inbox, (await recorded(inbox, slack("m2", sender=quiet))).id)
    stranger = Sender(id="slack:T1:U2", name="Bob")
    other = await begun(inbox, (await recorded(inbox, slack("m3", sender=stranger))).id)

    assert told.item.message.sender.groups == ("eng", "finance", "legal")
    assert known.item.message.sender.groups == ("finance", "legal")
    assert other.item.message.sender.groups == ()


async def test_no_profile_when_nothing_is_known_about_the_sender(
    storage: Storage, inbox: Inbox
) -> None:
    anonymous = Sender(id="slack:T1:U9")
    start = await begun(inbox, (await recorded(inbox, slack("m1", sender=anonymous))).id)

    assert start.profile is None
    assert await storage.count("profiles") == 0

    # Known from elsewhere: the message telling nothing leaves it as it is.
    known = await storage.profiles.upsert(Profile(id=anonymous.id, title="Engineer"))
    again = await begun(inbox, (await recorded(inbox, slack("m2", sender=anonymous))).id)
    assert again.profile == known


async def test_a_direct_conversation_is_owned_by_its_sender_and_a_channel_thread_by_nobody(
    inbox: Inbox,
) -> None:
    dm = await begun(inbox, (await recorded(inbox, slack("d1", is_direct=True, thread=""))).id)
    thread = await begun(inbox, (await recorded(inbox, slack("c1"))).id)

    assert (dm.conversation.owner, dm.conversation.ref.thread) == (ADA_SLACK.id, None)
    assert thread.conversation.owner is None
    assert thread.conversation.ref == slack("c1").conversation


# ----- finish_turn -----


async def test_finishing_stores_the_turns_in_order_and_keeps_the_item_until_delivered(
    storage: Storage, inbox: Inbox, clock: Clock
) -> None:
    start = await begun(inbox, (await recorded(inbox, slack())).id)
    item_id = start.item.id
    call = ToolCall(id="call_1", name="search_knowledge", arguments='{"query": "leave"}')
    citation = Citation(index=1, title="HR › Leave", url="https://wiki/leave", snippet="25 days")
    new = (
        NewTurn(role="assistant", content="", tool_calls=(call,), inbox_item_id=item_id),
        NewTurn(role="tool", content="[1] HR › Leave", tool_call_id="call_1",
                inbox_item_id=item_id),
        NewTurn(role="assistant", content="25 days [1]", citations=(citation,), tokens=4,
                inbox_item_id=item_id),
    )
    clock.advance(timedelta(seconds=30))

    stored = await inbox.finish_turn(TurnEnd(
        item_id=item_id, owner=WORKER.owner, conversation_id=start.conversation.id, turns=new))

    assert [(t.role, t.content, t.tool_calls, t.tool_call_id, t.citations, t.tokens)
            for t in stored] == [
        (n.role, n.content, n.tool_calls, n.tool_call_id, n.citations, n.tokens) for n in new]
    assert [t.id for t in stored] == sorted(t.id for t in stored)
    turns = await storage.conversations.recent_turns(start.conversation.id, 10)
    assert turns[1:] == stored and turns[0].role == "user"
    answered = await inbox.get(item_id)
    assert answered is not None and answered.status == "answered"
    assert answered.lease_until == start.item.lease_until  # still held while delivering
    assert await inbox.answer_of(item_id) == stored[-1]
    conversation = await storage.conversations.get(start.conversation.id)
    assert conversation is not None and conversation.updated_at == clock.now()
    assert await inbox.begin_turns(OTHER, limit=10) == []

    assert await inbox.finish_delivery(item_id, owner=WORKER.owner)
    done = await inbox.get(item_id)
    assert done is not None and (done.status, done.lease_until) == ("done", None)
    assert await inbox.begin_turns(OTHER, limit=10) == []


async def test_an_answer_stored_but_never_delivered_is_claimed_to_be_delivered_not_answered(
    storage: Storage, inbox: Inbox, clock: Clock
) -> None:
    """The process died between storing the answer and recording its delivery (say
    `chat.stopStream` was slow): once its lease expires, whoever claims the item gets the
    stored answer to deliver. Nothing is stored twice and the model is not asked again."""
    start = await begun(inbox, (await recorded(inbox, slack())).id)
    [stored] = await inbox.finish_turn(answer(start, "The stored answer."))
    assert await inbox.begin_turns(OTHER, limit=10) == []  # still held by the dead one

    after_the_lease(clock)
    [again] = await inbox.begin_turns(OTHER, limit=10)

    assert isinstance(again, Answered) and again.answer == stored
    assert (again.item.status, again.item.attempts) == ("answered", 2)
    assert not await inbox.finish_delivery(start.item.id, owner=WORKER.owner)  # not its own
    assert await inbox.finish_delivery(start.item.id, owner=OTHER.owner)
    assert await storage.count("turns") == 2  # the person's and the one answer
    done = await inbox.get(start.item.id)
    assert done is not None and done.status == "done"


async def test_the_message_showing_an_answer_is_noted_for_whoever_claims_the_item_next(
    inbox: Inbox, clock: Clock
) -> None:
    start = await begun(inbox, (await recorded(inbox, slack())).id)
    assert start.item.reply_id is None
    assert start.item.lease_owner == WORKER.owner
    # A stream was opened:
    assert await inbox.note_reply(start.item.id, "1700000000.000100", owner=WORKER.owner)
    after_the_lease(clock)  # and its process died

    [again] = await inbox.begin_turns(OTHER, limit=10)
    assert isinstance(again, Started)
    assert again.item.reply_id == "1700000000.000100"
    assert again.item.lease_owner == OTHER.owner


async def test_a_note_lands_only_while_its_worker_holds_the_item(
    inbox: Inbox, clock: Clock
) -> None:
    """Past its lease, but not yet taken over, a worker still notes its message (the
    database was away while it renewed); once taken over, never: the new owner was told
    nothing of that message, so the note must not point a later retry at it either."""
    item = await recorded(inbox, slack())
    start = await begun(inbox, item.id, WORKER)
    after_the_lease(clock)
    assert await inbox.note_reply(start.item.id, "1700000000.000100", owner=WORKER.owner)

    taken = await begun(inbox, item.id, OTHER)
    assert taken.item.reply_id == "1700000000.000100"  # the new owner finishes it
    assert not await inbox.note_reply(item.id, "1700000000.000200", owner=WORKER.owner)
    assert await inbox.note_reply(item.id, "1700000000.000300", owner=OTHER.owner)
    noted = await inbox.get(item.id)
    assert noted is not None and noted.reply_id == "1700000000.000300"


async def test_releasing_an_answered_item_leaves_it_to_be_delivered_at_once(
    inbox: Inbox, clock: Clock
) -> None:
    """A drained process gives back an answer it was still delivering: the next claim
    delivers it without waiting for a lease."""
    start = await begun(inbox, (await recorded(inbox, slack())).id)
    await inbox.finish_turn(answer(start, "Half delivered."))
    assert await inbox.release(start.item.id, owner=WORKER.owner)
    clock.advance(timedelta(seconds=1))

    [again] = await inbox.begin_turns(OTHER, limit=10)
    assert isinstance(again, Answered) and again.answer.content == "Half delivered."


async def test_a_worker_that_lost_its_lease_stores_nothing(
    storage: Storage, inbox: Inbox, clock: Clock
) -> None:
    item = await recorded(inbox, slack())
    late = await begun(inbox, item.id, WORKER)
    after_the_lease(clock)
    taken = await begun(inbox, item.id, OTHER)

    with pytest.raises(LeaseLost):
        await inbox.finish_turn(answer(late, "A late answer.", WORKER))

    assert await storage.count("turns") == 1  # the person's turn, nothing of the answer
    assert await inbox.get(item.id) == taken.item
    assert await inbox.answer_of(item.id) is None
    [stored] = await inbox.finish_turn(answer(taken, "The answer.", OTHER))
    assert await inbox.answer_of(item.id) == stored


async def test_a_holder_whose_lease_expired_unclaimed_still_finishes(
    inbox: Inbox, clock: Clock
) -> None:
    # LeaseLost means another worker took the item over; a slow turn nobody took over
    # stores its answer.
    start = await begun(inbox, (await recorded(inbox, slack())).id)
    after_the_lease(clock)

    [stored] = await inbox.finish_turn(answer(start, "Slow, but here."))

    assert await inbox.answer_of(start.item.id) == stored


async def test_a_finish_that_cannot_store_its_turns_leaves_the_item_held(
    storage: Storage, inbox: Inbox
) -> None:
    start = await begun(inbox, (await recorded(inbox, slack())).id)
    end = TurnEnd(item_id=start.item.id, owner=WORKER.owner, conversation_id="f" * 32,
                  turns=(NewTurn(role="assistant", content="Lost?"),))

    with pytest.raises(StorageError):
        await inbox.finish_turn(end)

    assert await inbox.get(start.item.id) == start.item  # not done without its answer
    assert await storage.count("turns") == 1


async def test_the_answer_of_an_item_is_its_final_assistant_turn(inbox: Inbox) -> None:
    unanswered = await recorded(inbox, slack("m2"))
    start = await begun(inbox, (await recorded(inbox, slack("m1"))).id)
    call = ToolCall(id="c1", name="get_user_info", arguments="{}")
    await inbox.finish_turn(TurnEnd(
        item_id=start.item.id, owner=WORKER.owner, conversation_id=start.conversation.id,
        turns=(
            NewTurn(role="assistant", content="Let me look.", tool_calls=(call,),
                    inbox_item_id=start.item.id),
            NewTurn(role="tool", content="{}", tool_call_id="c1", inbox_item_id=start.item.id),
            NewTurn(role="assistant", content="Found it.", inbox_item_id=start.item.id),
        ),
    ))

    found = await inbox.answer_of(start.item.id)
    assert found is not None and found.content == "Found it."
    assert await inbox.answer_of(unanswered.id) is None
    assert await inbox.answer_of(10**9) is None


def tool_round(start: Started, owner: str = WORKER.owner, call_id: str = "c1") -> TurnEnd:
    item_id = start.item.id
    call = ToolCall(id=call_id, name="create_ticket", arguments='{"title": "VPN"}')
    return TurnEnd(item_id=item_id, owner=owner, conversation_id=start.conversation.id, turns=(
        NewTurn(role="assistant", content="", tool_calls=(call,), inbox_item_id=item_id),
        NewTurn(role="tool", content="Opened TCK-1.", tool_call_id=call_id, inbox_item_id=item_id),
    ))


async def test_a_retry_starts_with_the_tool_rounds_an_earlier_attempt_stored(
    inbox: Inbox, clock: Clock
) -> None:
    item = await recorded(inbox, slack())
    first = await begun(inbox, item.id)
    assert first.rounds == ()
    stored = await inbox.record_round(tool_round(first))
    stored += await inbox.record_round(tool_round(first, call_id="c2"))
    after_the_lease(clock)  # the process died

    again = await begun(inbox, item.id, OTHER)
    assert again.rounds == tuple(stored)
    assert [t.role for t in again.rounds] == ["assistant", "tool", "assistant", "tool"]
    assert again.history == ()  # the rounds are this message's, not the thread's past
    assert await inbox.answer_of(item.id) is None  # a tool round is not an answer


async def test_a_worker_that_lost_its_lease_stores_no_tool_round(
    storage: Storage, inbox: Inbox, clock: Clock
) -> None:
    item = await recorded(inbox, slack())
    late = await begun(inbox, item.id, WORKER)
    after_the_lease(clock)
    await begun(inbox, item.id, OTHER)

    with pytest.raises(LeaseLost):
        await inbox.record_round(tool_round(late))
    assert await storage.count("turns") == 1


# ----- renew / release / fail -----


async def test_renewing_extends_the_leases_still_held_and_says_which(
    inbox: Inbox, clock: Clock
) -> None:
    mine = [await recorded(inbox, slack(f"m{n}")) for n in range(2)]
    for item in mine:
        await begun(inbox, item.id, WORKER)
    theirs = await recorded(inbox, slack("t1"))
    await begun(inbox, theirs.id, OTHER)
    clock.advance(LEASE - timedelta(seconds=1))
    renewed_at = clock.now()

    renewed = await inbox.renew([mine[0].id, mine[1].id, theirs.id, 10**9], WORKER)

    assert renewed == {mine[0].id, mine[1].id}
    clock.advance(timedelta(seconds=2))  # past the first leases
    assert [s.item.id for s in await inbox.begin_turns(Claim(owner="w3", lease=LEASE),
                                                      limit=10)] == [theirs.id]
    stored = await inbox.get(mine[0].id)
    assert stored is not None and stored.lease_until == renewed_at + LEASE


async def test_only_the_lease_holder_can_renew_finish_fail_or_release(inbox: Inbox) -> None:
    start = await begun(inbox, (await recorded(inbox, slack())).id, WORKER)
    intruder = Claim(owner="intruder", lease=LEASE)

    assert await inbox.renew([start.item.id], intruder) == set()
    assert not await inbox.fail(start.item.id, owner="intruder", error="no")
    assert not await inbox.release(start.item.id, owner="intruder")
    with pytest.raises(LeaseLost):
        await inbox.finish_turn(answer(start, "Mine now.", intruder))

    assert await inbox.get(start.item.id) == start.item
    assert await inbox.renew([start.item.id], WORKER) == {start.item.id}


async def test_release_gives_the_item_back_keeping_the_attempt_counted(inbox: Inbox) -> None:
    item = await recorded(inbox, slack())
    await begun(inbox, item.id, WORKER)

    assert await inbox.release(item.id, owner=WORKER.owner)

    released = await inbox.get(item.id)
    assert released is not None
    assert (released.status, released.attempts, released.lease_until) == ("pending", 1, None)
    # The next start is a retry (attempts 2): it looks for the turn stored before.
    [again] = await inbox.begin_turns(OTHER, limit=10)
    assert again.item.attempts == 2
    assert not await inbox.release(item.id, owner=WORKER.owner)


async def test_fail_keeps_the_error_cut_to_the_column(inbox: Inbox) -> None:
    item = await recorded(inbox, slack())
    await begun(inbox, item.id, WORKER)

    assert await inbox.fail(item.id, owner=WORKER.owner, error="é" * 1000)

    stored = await inbox.get(item.id)
    assert stored is not None
    assert (stored.status, stored.lease_until, stored.last_error) == ("failed", None, "é" * 256)
    assert await inbox.begin_turns(OTHER, limit=10) == []


async def test_unknown_items_are_none(inbox: Inbox) -> None:
    assert await inbox.get(10**9) is None
    assert await inbox.find(channel="slack", tenant="T1", message_id="nothing") is None


async def test_find_looks_a_delivered_message_up_by_its_platform_key(inbox: Inbox) -> None:
    item = await recorded(inbox, slack())

    assert await inbox.find(channel="slack", tenant="T1", message_id="1700.0001") == item
    assert await inbox.find(channel="slack", tenant="T2", message_id="1700.0001") is None
    assert await inbox.find(channel="teams", tenant="T1", message_id="1700.0001") is None


# ----- transactions (SQL only) -----


@sql_only
async def test_a_cancelled_caller_leaves_no_transaction_behind(
    storage: Storage, inbox: Inbox
) -> None:
    other_process = storage.inbox(other_process=True)
    # Cancel at every point of accept(): before, during and after each statement.
    for yields in range(40):
        task = asyncio.create_task(inbox.accept(Acceptance(message=slack(f"m{yields}"))))
        for _ in range(yields):
            await asyncio.sleep(0)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        # Well under busy_timeout (5 s): a leaked write lock would make these wait it out.
        async with asyncio.timeout(3):
            again = await inbox.accept(Acceptance(message=slack(f"m{yields}")))
            assert isinstance(again, Recorded | Duplicate)
            assert await other_process.get(10**9) is None
    assert await storage.count("inbox") == 40


def write(key: str, *, then: Callable[[], None] | None = None) -> Callable[[Connection], str]:
    """A unit that records `key` in the deliveries table (then runs `then`)."""

    def unit(conn: Connection) -> str:
        conn.execute(insert(conn, deliveries).values(
            channel="test", key=key, received_at=datetime(2025, 3, 1, tzinfo=UTC)))
        if then is not None:
            then()
        return key

    return unit


async def written(database: Database) -> set[str]:
    async with database.engine().connect() as conn:
        return set((await conn.execute(select(deliveries.c.key))).scalars())


class Gate:
    """A unit that holds SQLite's writer thread until the test opens the gate, so the
    units queued meanwhile go into the next transaction together."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.opened = threading.Event()

    def unit(self, conn: Connection) -> str:
        self.entered.set()
        assert self.opened.wait(timeout=30), "the test never opened the gate"
        return "gate"

    @contextlib.asynccontextmanager
    async def holding(self, writer: SqliteWriter) -> AsyncIterator[asyncio.Task[str]]:
        held = asyncio.create_task(writer.run(self.unit, "holding the writer"))
        await asyncio.to_thread(self.entered.wait, 30)
        try:
            yield held
        finally:
            self.opened.set()
            await held


async def queued(writer: SqliteWriter, units: int) -> None:
    """Until `units` units have been handed to the writer (each `run` queues at once)."""
    while sum(writer.units.values()) < units:
        await asyncio.sleep(0)


@sqlite_only
async def test_group_commit_answers_each_caller_after_the_commit_of_its_batch(
    database: Database, executor: Executor
) -> None:
    assert isinstance(executor, SqliteWriter)
    path = make_url(database.url).database
    assert path is not None
    # Another connection, as another process reads the file: it sees committed data only.
    reader = sqlite3.connect(path, check_same_thread=False)
    seen_inside: list[int] = []

    def peek() -> None:  # from inside the batch: the units before are not committed yet
        seen_inside.append(reader.execute("SELECT count(*) FROM deliveries").fetchone()[0])

    async def call(n: int) -> bool:
        key = await executor.run(write(f"k{n}", then=peek if n == 19 else None), f"unit {n}")
        # Answered: the write is durable and visible to others, at this very moment.
        found = reader.execute("SELECT 1 FROM deliveries WHERE key = ?", (key,)).fetchone()
        return found is not None

    try:
        async with Gate().holding(executor):
            callers = [asyncio.create_task(call(n)) for n in range(20)]
            await queued(executor, 21)
        visible = await asyncio.gather(*callers)
    finally:
        reader.close()

    assert visible == [True] * 20
    assert seen_inside == [0]  # 19 units had written in the batch, none committed
    # The gate's, then one for all 20.
    assert (sum(executor.units.values()), executor.commits) == (21, 2)
    assert await written(database) == {f"k{n}" for n in range(20)}


class Refused(Exception):
    pass


def refuse() -> None:
    raise Refused("the unit changed its mind")


@contextlib.asynccontextmanager
async def one_batch(executor: Executor, units: int) -> AsyncIterator[None]:
    """On SQLite, the units started inside go into one transaction (group commit); on
    PostgreSQL each has its own anyway."""
    if isinstance(executor, SqliteWriter):
        before = sum(executor.units.values())
        async with Gate().holding(executor):
            yield
            await queued(executor, before + 1 + units)
    else:
        yield


@sql_only
async def test_a_unit_that_raises_rolls_back_alone_and_the_others_commit(
    database: Database, executor: Executor
) -> None:
    assert await executor.run(write("k0"), "k0") == "k0"
    async with one_batch(executor, 4):
        calls = [
            asyncio.create_task(executor.run(write("k1"), "k1")),
            asyncio.create_task(executor.run(write("k2", then=refuse), "k2")),
            # A key written before: refused by the database, whichever runs first.
            asyncio.create_task(executor.run(write("k0"), "k0 again")),
            asyncio.create_task(executor.run(write("k3"), "k3")),
        ]
    outcomes = await asyncio.gather(*calls, return_exceptions=True)

    assert outcomes[0] == "k1" and outcomes[3] == "k3"
    assert isinstance(outcomes[1], Refused)  # the unit's own exception, as it is
    assert isinstance(outcomes[2], StorageError) and str(outcomes[2]) == "k0 again failed"
    assert await written(database) == {"k0", "k1", "k3"}
    if isinstance(executor, SqliteWriter):
        assert executor.commits == 3  # k0, the gate's, then one for the four units


@sqlite_only
async def test_deliveries_recorded_at_once_share_transactions(
    storage: Storage, executor: Executor
) -> None:
    """The bookkeeping of many answers delivered at the same time costs a few units of
    work, not one each; every caller still learns its own outcome."""
    assert isinstance(executor, SqliteWriter)
    inbox = storage.inbox()
    starts = []
    for n in range(20):
        start = await begun(inbox, (await recorded(inbox, slack(f"m{n}"))).id)
        await inbox.finish_turn(answer(start, f"Answer {n}."))
        starts.append(start)
    before = executor.units["marking"]

    marked = await asyncio.gather(
        *(inbox.finish_delivery(s.item.id, owner=WORKER.owner) for s in starts),
        inbox.finish_delivery(starts[0].item.id, owner="someone-else"),
    )

    assert marked == [True] * 20 + [False]
    assert executor.units["marking"] - before < 20
    assert {(await inbox.get(s.item.id)).status for s in starts} == {"done"}  # type: ignore[union-attr]


@sqlite_only
async def test_writers_in_two_processes_take_turns_through_the_lock_file(
    database: Database, executor: Executor
) -> None:
    """Another process's writer holds `<file>-writer.lock`: this one waits for it (woken
    when it is let go, not polling as SQLite's busy handler does), then commits."""
    assert isinstance(executor, SqliteWriter)
    path = make_url(database.url).database
    lock = os.open(f"{path}-writer.lock", os.O_RDWR | os.O_CREAT)
    ran: list[str] = []
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        call = asyncio.create_task(executor.run(write("k1", then=lambda: ran.append("k1")), "k1"))
        await queued(executor, 1)
        await asyncio.sleep(0.2)
        assert ran == [] and not call.done()
        fcntl.flock(lock, fcntl.LOCK_UN)
        assert await call == "k1"
    finally:
        os.close(lock)
    assert ran == ["k1"]
    assert await written(database) == {"k1"}


@sqlite_only
async def test_a_process_stopped_while_holding_the_lock_file_does_not_hang_the_others(
    database: Database, executor: Executor, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Past LOCK_WAIT the unit goes ahead without the lock (SQLite's own locking still
    applies), and the lock is let go again once the abandoned wait gets it."""
    monkeypatch.setattr(writer_module, "LOCK_WAIT", 0.2)
    path = make_url(database.url).database
    lock = os.open(f"{path}-writer.lock", os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        assert await executor.run(write("k1"), "k1") == "k1"
        assert "held the SQLite writer lock" in caplog.text
        fcntl.flock(lock, fcntl.LOCK_UN)
    finally:
        os.close(lock)
    other = os.open(f"{path}-writer.lock", os.O_RDWR)
    try:
        for _ in range(500):  # the helper thread takes the lock, then gives it back
            try:
                fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                await asyncio.sleep(0.01)
        else:
            pytest.fail("the abandoned wait kept the lock")
    finally:
        os.close(other)
    assert await executor.run(write("k2"), "k2") == "k2"


@sqlite_only
async def test_a_caller_cancelled_while_its_unit_is_queued_does_not_break_the_batch(
    database: Database, executor: Executor
) -> None:
    assert isinstance(executor, SqliteWriter)
    ran: list[str] = []

    def note(key: str) -> Callable[[], None]:
        return lambda: ran.append(key)

    async with Gate().holding(executor):
        first = asyncio.create_task(executor.run(write("k1", then=note("k1")), "k1"))
        gone = asyncio.create_task(executor.run(write("k2", then=note("k2")), "k2"))
        last = asyncio.create_task(executor.run(write("k3", then=note("k3")), "k3"))
        await queued(executor, 4)
        gone.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await gone

    assert (await first, await last) == ("k1", "k3")
    assert gone.cancelled()
    assert ran == ["k1", "k3"]  # nothing of the cancelled caller's was written
    assert await written(database) == {"k1", "k3"}
    assert executor.commits == 2


@sqlite_only
async def test_closing_the_writer_finishes_what_is_queued(
    database: Database, executor: Executor
) -> None:
    assert isinstance(executor, SqliteWriter)

    async with Gate().holding(executor):
        calls = [asyncio.create_task(executor.run(write(f"k{n}"), f"k{n}")) for n in range(5)]
        await queued(executor, 6)
        closing = asyncio.create_task(executor.aclose())
        await asyncio.sleep(0)  # aclose has queued its stop behind the units
    await closing

    assert [c.result() for c in calls] == [f"k{n}" for n in range(5)]
    assert await written(database) == {f"k{n}" for n in range(5)}
    with pytest.raises(StorageError, match="closed"):
        await executor.run(write("late"), "late")

