"""Groups kept in SQL: members by email or channel-scoped id, found by either, and read
by every process at once (each test's second engine stands for another process)."""

from __future__ import annotations

import pytest

from adapters.sql.groups import SqlGroupStore
from core.groups import GroupError, GroupSummary, group_name, member_name
from core.messages import Sender
from tests.adapters.sql.conftest import Clock, Database


async def test_members_are_added_once_and_listed_by_group(
    database: Database, engine: object, clock: Clock
) -> None:
    groups = SqlGroupStore(database.engine(), now=clock.now)

    assert await groups.add("finance", ["slack:T1:U1", "ada@example.com", "slack:T1:U1"]) == 2
    assert await groups.add("finance", ["ada@example.com", "teams:t:9"]) == 1
    assert await groups.add("legal", ["ada@example.com"]) == 1

    assert await groups.list() == [GroupSummary(name="finance", members=3),
                                   GroupSummary(name="legal", members=1)]
    assert await groups.members("finance") == ["ada@example.com", "slack:T1:U1", "teams:t:9"]
    assert await groups.members("nobody") == []


async def test_a_sender_is_found_by_id_or_by_verified_email_in_another_process(
    database: Database, engine: object, clock: Clock
) -> None:
    here, there = (SqlGroupStore(database.engine(), now=clock.now) for _ in range(2))
    await here.add("finance", ["slack:T1:U1"])
    await here.add("legal", ["grace@example.com"])

    assert await there.groups_of(Sender(id="slack:T1:U1")) == {"finance"}
    assert await there.groups_of(Sender(id="teams:t:7", email="Grace@Example.com")) == {"legal"}
    assert await there.groups_of(Sender(id="slack:T1:U1", email="grace@example.com")) == {
        "finance", "legal"}
    assert await there.groups_of(Sender(id="slack:T1:U2")) == frozenset()


async def test_removing_the_last_member_removes_the_group(
    database: Database, engine: object, clock: Clock
) -> None:
    groups = SqlGroupStore(database.engine(), now=clock.now)
    await groups.add("finance", ["slack:T1:U1", "ada@example.com"])

    assert await groups.remove("finance", ["slack:T1:U1", "slack:T1:U9"]) == 1
    assert await groups.groups_of(Sender(id="slack:T1:U1")) == frozenset()
    assert await groups.remove("finance", ["ada@example.com"]) == 1
    assert await groups.list() == []


@pytest.mark.parametrize("raw", ["", "two words", "-x", "a" * 129, "slack:T1"])
def test_a_group_name_must_be_one_plain_word(raw: str) -> None:
    with pytest.raises(GroupError):
        group_name(raw)


@pytest.mark.parametrize("raw", ["ada", "slack:T1", "ada@example", "a b@example.com",
                                 "slack::U1", "x@" + "e" * 260 + ".com"])
def test_a_member_is_an_email_or_a_channel_scoped_id(raw: str) -> None:
    with pytest.raises(GroupError):
        member_name(raw)


def test_emails_are_kept_lower_case_and_ids_as_given() -> None:
    assert member_name(" Ada@Example.COM ") == "ada@example.com"
    assert member_name("teams:72f988bf-86f1:29:1AbC") == "teams:72f988bf-86f1:29:1AbC"
