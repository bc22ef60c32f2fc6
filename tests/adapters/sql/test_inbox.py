from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.sql.inbox import SqlInbox
from adapters.sql.tables import inbox as inbox_table
from core.inbox import Duplicate, InboxItem, Recorded, Requeued
from core.messages import Attachment, ConversationRef, InboundMessage, Sender
from tests.adapters.sql.conftest import Clock, Database

LEASE = timedelta(minutes=5)


def message(message_id: str = "1700.0001", *, tenant: str = "T1") -> InboundMessage:
    return InboundMessage(
        id=message_id,
        conversation=ConversationRef(channel="slack", tenant=tenant, conversation="C1",
                                     thread="1700.0000"),
        sender=Sender(id=f"slack:{tenant}:U1", name="Ada", groups=("eng",)),
        text="Where is the leave policy?",
        sent_at=datetime(2025, 3, 1, 11, 59, tzinfo=UTC),
        is_direct=False,
        attachments=(Attachment(name="a.pdf", content_type="application/pdf", size=3),),
        channel_data={"team": tenant, "blocks": [{"type": "rich_text"}]},
    )


async def recorded(inbox: SqlInbox, msg: InboundMessage, **claim: object) -> InboxItem:
    outcome = await inbox.record(msg, **claim)  # type: ignore[arg-type]
    assert isinstance(outcome, Recorded), outcome
    return outcome.item


async def test_a_first_delivery_is_stored_pending(inbox: SqlInbox) -> None:
    item = await recorded(inbox, message())

    assert (item.status, item.attempts, item.lease_until, item.last_error) == (
        "pending", 0, None, None)
    assert item.message == message()
    assert await inbox.get(item.id) == item


async def test_duplicate_delivery_is_refused_atomically(
    database: Database, engine: AsyncEngine, clock: Clock
) -> None:
    # Two engines: on SQLite they stand for two processes sharing the file.
    inboxes = [SqlInbox(e, now=clock.now) for e in (engine, database.engine())]
    barrier = asyncio.Barrier(20)

    async def deliver(n: int) -> object:
        await barrier.wait()
        return await inboxes[n % 2].record(message())

    outcomes = await asyncio.gather(*(deliver(n) for n in range(20)))

    firsts = [o for o in outcomes if isinstance(o, Recorded)]
    assert len(firsts) == 1
    assert all(o == Duplicate(item_id=firsts[0].item.id, status="pending")
               for o in outcomes if o is not firsts[0])
    async with engine.connect() as conn:
        assert (await conn.execute(select(func.count()).select_from(inbox_table))).scalar() == 1


async def test_the_same_message_id_in_another_tenant_is_another_message(inbox: SqlInbox) -> None:
    first = await recorded(inbox, message(tenant="T1"))
    second = await recorded(inbox, message(tenant="T2"))
    assert first.id != second.id


async def test_recording_with_an_owner_claims_the_item_at_once(
    inbox: SqlInbox, clock: Clock
) -> None:
    item = await recorded(inbox, message(), owner="web-1", lease=LEASE)

    assert (item.status, item.attempts, item.lease_until) == ("processing", 1, clock.now() + LEASE)
    assert await inbox.claim(owner="worker-1", lease=LEASE, limit=10) == []
    assert await inbox.claim_item(item.id, owner="worker-1", lease=LEASE) is None


async def test_redelivery_of_a_waiting_running_or_answered_message_is_a_duplicate(
    inbox: SqlInbox,
) -> None:
    item = await recorded(inbox, message())
    assert await inbox.record(message()) == Duplicate(item_id=item.id, status="pending")

    await inbox.claim(owner="worker-1", lease=LEASE, limit=1)
    assert await inbox.record(message()) == Duplicate(item_id=item.id, status="processing")

    await inbox.complete(item.id, owner="worker-1")
    assert await inbox.record(message()) == Duplicate(item_id=item.id, status="done")


async def test_redelivery_of_a_failed_message_requeues_it(inbox: SqlInbox) -> None:
    item = await recorded(inbox, message())
    await inbox.claim(owner="worker-1", lease=LEASE, limit=1)
    await inbox.fail(item.id, owner="worker-1", error="model timed out")

    outcome = await inbox.record(message())

    assert isinstance(outcome, Requeued)
    assert (outcome.item.id, outcome.item.status, outcome.item.lease_until) == (
        item.id, "pending", None)
    [again] = await inbox.claim(owner="worker-2", lease=LEASE, limit=10)
    assert (again.id, again.attempts, again.last_error) == (item.id, 2, "model timed out")


async def test_redelivery_of_a_failed_message_with_an_owner_claims_it(
    inbox: SqlInbox, clock: Clock
) -> None:
    item = await recorded(inbox, message(), owner="web-1", lease=LEASE)
    await inbox.fail(item.id, owner="web-1", error="boom")

    outcome = await inbox.record(message(), owner="web-2", lease=LEASE)

    assert isinstance(outcome, Requeued)
    assert (outcome.item.status, outcome.item.attempts, outcome.item.lease_until) == (
        "processing", 2, clock.now() + LEASE)
    assert await inbox.claim(owner="worker-1", lease=LEASE, limit=10) == []


async def test_concurrent_redeliveries_of_a_failed_message_requeue_it_once(
    database: Database, engine: AsyncEngine, clock: Clock
) -> None:
    inboxes = [SqlInbox(e, now=clock.now) for e in (engine, database.engine())]
    item = await recorded(inboxes[0], message(), owner="web-1", lease=LEASE)
    await inboxes[0].fail(item.id, owner="web-1", error="boom")
    barrier = asyncio.Barrier(10)

    async def redeliver(n: int) -> object:
        await barrier.wait()
        return await inboxes[n % 2].record(message())

    outcomes = await asyncio.gather(*(redeliver(n) for n in range(10)))

    assert sum(isinstance(o, Requeued) for o in outcomes) == 1
    assert outcomes.count(Duplicate(item_id=item.id, status="pending")) == 9


async def test_items_are_claimed_oldest_first_up_to_the_limit(
    inbox: SqlInbox, clock: Clock
) -> None:
    ids = [(await recorded(inbox, message(f"m{n}"))).id for n in range(5)]

    claimed = await inbox.claim(owner="worker-1", lease=LEASE, limit=3)

    assert [i.id for i in claimed] == ids[:3]
    assert all((i.status, i.attempts, i.lease_until) == ("processing", 1, clock.now() + LEASE)
               for i in claimed)
    assert [i.id for i in await inbox.claim(owner="worker-2", lease=LEASE, limit=10)] == ids[3:]


async def test_concurrent_claimers_never_claim_the_same_item(
    database: Database, engine: AsyncEngine, clock: Clock
) -> None:
    ids = {(await recorded(SqlInbox(engine, now=clock.now), message(f"m{n}"))).id
           for n in range(30)}
    # One engine per worker: on SQLite, separate connections contend for the file lock.
    workers = [SqlInbox(e, now=clock.now) for e in (engine, database.engine(), database.engine())]
    barrier = asyncio.Barrier(len(workers))

    async def work(n: int) -> list[int]:
        await barrier.wait()
        mine: list[int] = []
        while batch := await workers[n].claim(owner=f"worker-{n}", lease=LEASE, limit=4):
            mine += [item.id for item in batch]
        return mine

    claims = await asyncio.gather(*(work(n) for n in range(len(workers))))

    everything = [item_id for mine in claims for item_id in mine]
    assert sorted(everything) == sorted(ids)  # each item claimed exactly once


async def test_an_expired_lease_is_reclaimed_by_another_worker(
    inbox: SqlInbox, clock: Clock
) -> None:
    item = await recorded(inbox, message())
    await inbox.claim(owner="worker-1", lease=LEASE, limit=1)

    clock.advance(LEASE - timedelta(seconds=1))
    assert await inbox.claim(owner="worker-2", lease=LEASE, limit=10) == []
    clock.advance(timedelta(seconds=2))
    [taken] = await inbox.claim(owner="worker-2", lease=LEASE, limit=10)

    assert (taken.id, taken.attempts, taken.lease_until) == (item.id, 2, clock.now() + LEASE)
    assert not await inbox.renew(item.id, owner="worker-1", lease=LEASE)
    await inbox.complete(item.id, owner="worker-1")  # the dead worker woke up: ignored
    assert await inbox.get(item.id) == taken


async def test_claim_item_takes_one_pending_or_expired_item(
    inbox: SqlInbox, clock: Clock
) -> None:
    item = await recorded(inbox, message())

    claimed = await inbox.claim_item(item.id, owner="web-1", lease=LEASE)
    assert claimed is not None and (claimed.status, claimed.attempts) == ("processing", 1)
    assert await inbox.claim_item(item.id, owner="web-2", lease=LEASE) is None
    clock.advance(LEASE + timedelta(seconds=1))
    again = await inbox.claim_item(item.id, owner="web-2", lease=LEASE)
    assert again is not None and again.attempts == 2
    assert await inbox.claim_item(10**9, owner="web-2", lease=LEASE) is None


async def test_renewing_extends_the_lease(inbox: SqlInbox, clock: Clock) -> None:
    item = await recorded(inbox, message(), owner="worker-1", lease=LEASE)
    clock.advance(LEASE - timedelta(seconds=1))
    renewed_at = clock.now()

    assert await inbox.renew(item.id, owner="worker-1", lease=LEASE)

    clock.advance(timedelta(seconds=2))  # past the first lease
    assert await inbox.claim(owner="worker-2", lease=LEASE, limit=10) == []
    stored = await inbox.get(item.id)
    assert stored is not None and stored.lease_until == renewed_at + LEASE


async def test_only_the_lease_holder_can_renew_complete_fail_or_release(inbox: SqlInbox) -> None:
    item = await recorded(inbox, message(), owner="worker-1", lease=LEASE)

    assert not await inbox.renew(item.id, owner="intruder", lease=LEASE)
    await inbox.complete(item.id, owner="intruder")
    await inbox.fail(item.id, owner="intruder", error="no")
    await inbox.release(item.id, owner="intruder")

    assert await inbox.get(item.id) == item


async def test_complete_marks_done_and_ends_the_lease(inbox: SqlInbox) -> None:
    item = await recorded(inbox, message(), owner="worker-1", lease=LEASE)

    await inbox.complete(item.id, owner="worker-1")

    done = await inbox.get(item.id)
    assert done is not None and (done.status, done.lease_until) == ("done", None)
    assert not await inbox.renew(item.id, owner="worker-1", lease=LEASE)
    assert await inbox.claim(owner="worker-2", lease=LEASE, limit=10) == []


async def test_fail_keeps_the_error_cut_to_the_column(inbox: SqlInbox) -> None:
    item = await recorded(inbox, message(), owner="worker-1", lease=LEASE)

    await inbox.fail(item.id, owner="worker-1", error="é" * 1000)

    failed = await inbox.get(item.id)
    assert failed is not None
    assert (failed.status, failed.lease_until, failed.last_error) == ("failed", None, "é" * 256)
    assert await inbox.claim(owner="worker-2", lease=LEASE, limit=10) == []


async def test_release_gives_the_item_back_keeping_the_attempt_counted(inbox: SqlInbox) -> None:
    item = await recorded(inbox, message(), owner="worker-1", lease=LEASE)

    await inbox.release(item.id, owner="worker-1")

    released = await inbox.get(item.id)
    assert released is not None
    assert (released.status, released.attempts, released.lease_until) == ("pending", 1, None)
    # The next claim is a retry (attempts 2): it looks for an answer stored before.
    [again] = await inbox.claim(owner="worker-2", lease=LEASE, limit=10)
    assert again.attempts == 2


async def test_unknown_items_are_none(inbox: SqlInbox) -> None:
    assert await inbox.get(10**9) is None


async def test_an_owner_needs_a_lease(inbox: SqlInbox) -> None:
    with pytest.raises(ValueError):
        await inbox.record(message(), owner="web-1")


async def test_a_cancelled_caller_leaves_no_transaction_behind(
    database: Database, inbox: SqlInbox, clock: Clock
) -> None:
    other_process = SqlInbox(database.engine(), now=clock.now)
    # Cancel at every point of record(): before, during and after each statement.
    for yields in range(40):
        task = asyncio.create_task(inbox.record(message(f"m{yields}")))
        for _ in range(yields):
            await asyncio.sleep(0)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        # Well under busy_timeout (5 s): a leaked write lock would make these wait it out.
        async with asyncio.timeout(3):
            assert not isinstance(await inbox.record(message(f"m{yields}")), Requeued)
            assert await other_process.get(10**9) is None


async def test_find_looks_a_delivered_message_up_by_its_platform_key(inbox: SqlInbox) -> None:
    item = await recorded(inbox, message())
    assert await inbox.find(channel="slack", tenant="T1", message_id="1700.0001") == item
    assert await inbox.find(channel="slack", tenant="T2", message_id="1700.0001") is None


async def test_recording_with_a_zero_lease_still_claims(inbox: SqlInbox) -> None:
    # timedelta(0) is falsy: the claim must not depend on truthiness.
    item = await recorded(inbox, message(), owner="worker-1", lease=timedelta(0))
    assert (item.status, item.attempts) == ("processing", 1)
