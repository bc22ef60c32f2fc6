"""The stop and title units on SQLite, PostgreSQL and the in-memory stores: a stop is
recorded once, a waiting item ends done at once, an item being answered stays held by
its worker (which ends it), and a conversation keeps the first title it is given."""

from __future__ import annotations

import pytest

from core.inbox import Acceptance, Claim, Recorded, Started, TurnEnd
from core.ports import Inbox
from core.threads import NewTurn
from tests.adapters.sql.conftest import ALL_BACKENDS, Clock, Storage
from tests.adapters.sql.test_inbox import ADA_WEB, LEASE, WORKER, after_the_lease, web


@pytest.fixture(params=ALL_BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    kind: str = request.param
    return kind


async def started(inbox: Inbox, message_id: str, claim: Claim = WORKER) -> Started:
    outcome = await inbox.accept(Acceptance(message=web(message_id)))
    assert isinstance(outcome, Recorded)
    start = await inbox.begin_turn(outcome.item.id, claim)
    assert isinstance(start, Started)
    return start


async def test_a_waiting_item_stopped_is_done_and_never_claimed(storage: Storage) -> None:
    inbox = storage.inbox()
    outcome = await inbox.accept(Acceptance(message=web("m1")))
    assert isinstance(outcome, Recorded)
    before = await inbox.request_stop(outcome.item.id, by=ADA_WEB.id)
    assert before == "pending"
    item = await inbox.get(outcome.item.id)
    assert item is not None and item.status == "done" and item.stopped_by == ADA_WEB.id
    assert await inbox.begin_turns(WORKER, limit=5) == []
    assert await inbox.request_stop(outcome.item.id, by=ADA_WEB.id) is None


async def test_an_item_being_answered_is_marked_and_stays_held(storage: Storage) -> None:
    inbox = storage.inbox()
    start = await started(inbox, "m1")
    stopped = await inbox.request_stop(start.item.id, by="web:local:root")
    assert stopped == "processing"
    # A second stop (another click) is recorded as the first: who stopped it stays.
    assert await inbox.request_stop(start.item.id, by=ADA_WEB.id) is not None
    item = await inbox.get(start.item.id)
    assert item is not None and item.status == "processing"
    assert item.stopped_by == "web:local:root" and item.lease_owner == WORKER.owner
    assert await inbox.renew([start.item.id], WORKER) == {start.item.id}
    other = await started(inbox, "m2")
    assert await inbox.stopped_among([start.item.id, other.item.id]) == {start.item.id}


async def test_the_unfinished_item_of_a_conversation_is_its_newest_being_answered(
    storage: Storage,
) -> None:
    inbox = storage.inbox()
    first = await started(inbox, "m1")
    found = await inbox.unfinished_in(first.conversation.id)
    assert found is not None and found.id == first.item.id
    assert await inbox.unfinished_in("no-such-conversation") is None
    # Its lease ran out and another worker claimed it: still the one being answered.
    other = Claim(owner="worker-9", lease=LEASE)
    assert await inbox.release(first.item.id, owner=WORKER.owner)
    again = await inbox.begin_turn(first.item.id, other)
    assert isinstance(again, Started)
    found = await inbox.unfinished_in(first.conversation.id)
    assert found is not None and found.id == first.item.id and found.lease_owner == "worker-9"


async def test_a_stopped_item_claimed_again_says_it_was_stopped(
    storage: Storage, clock: Clock
) -> None:
    inbox = storage.inbox()
    dead = Claim(owner="dead", lease=LEASE)
    start = await started(inbox, "m1", dead)
    assert await inbox.request_stop(start.item.id, by=ADA_WEB.id) is not None
    after_the_lease(clock)
    again = await inbox.begin_turn(start.item.id, WORKER)
    assert isinstance(again, Started) and again.item.stopped_by == ADA_WEB.id


async def test_the_first_answer_names_the_conversation_and_the_name_stays(
    storage: Storage,
) -> None:
    inbox = storage.inbox()
    start = await started(inbox, "m1")
    await inbox.finish_turn(TurnEnd(
        item_id=start.item.id, owner=WORKER.owner, conversation_id=start.conversation.id,
        turns=(NewTurn(role="assistant", content="See the handbook."),), title="Leave policy",
    ))
    later = await started(inbox, "m2")
    await inbox.finish_turn(TurnEnd(
        item_id=later.item.id, owner=WORKER.owner, conversation_id=later.conversation.id,
        turns=(NewTurn(role="assistant", content="Yes."),), title="Something else",
    ))
    stored = await storage.conversations.get(start.conversation.id)
    assert stored is not None and stored.title == "Leave policy"
    [summary] = await storage.conversations.owned(channel="web", owner=ADA_WEB.id, limit=5)
    assert summary.title == "Leave policy"
