"""Slack user groups as senders carry them: read once per workspace with
`usergroups.list`, shared by concurrent lookups, refreshed after the TTL, and a failure
costs the sender their Slack groups for a short while, never the answer."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack.usergroups import SlackUserGroups
from adapters.slack.users import SlackUsers
from tests.fakes.slack_api import ApiError, FakeSlack


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    async with FakeSlack(team_id="T111", bot_user_id="UBOT", bot_id="BBOT") as fake:
        yield fake


@pytest.fixture
def client(slack: FakeSlack) -> AsyncWebClient:
    return AsyncWebClient(token="xoxb-test", base_url=slack.base_url)


async def test_groups_are_read_once_and_refreshed_after_the_ttl(
    slack: FakeSlack, client: AsyncWebClient
) -> None:
    clock = Clock()
    groups = SlackUserGroups(ttl=600, clock=clock)
    slack.add_usergroup("planners", ["U1", "U2"])
    slack.add_usergroup("hr", ["U1"])
    slack.add_usergroup("old", ["U1"], disabled=True)

    found = await asyncio.gather(*(groups.of(client, "T111", u) for u in ("U1", "U2", "U3")))

    assert found == [("hr", "planners"), ("planners",), ()]
    assert len(slack.calls_to("usergroups.list")) == 1
    slack.usergroups[0]["users"] = ["U2"]
    clock.now = 599
    assert await groups.of(client, "T111", "U1") == ("hr", "planners")
    clock.now = 601
    assert await groups.of(client, "T111", "U1") == ("hr",)
    assert len(slack.calls_to("usergroups.list")) == 2


async def test_a_failure_means_no_slack_groups_for_a_while(
    slack: FakeSlack, client: AsyncWebClient
) -> None:
    clock = Clock()
    groups = SlackUserGroups(failure_ttl=60, clock=clock)
    slack.add_usergroup("planners", ["U1"])
    slack.script("usergroups.list", ApiError("missing_scope"))

    assert await groups.of(client, "T111", "U1") == ()
    clock.now = 30
    assert await groups.of(client, "T111", "U1") == ()
    clock.now = 61
    assert await groups.of(client, "T111", "U1") == ("planners",)


async def test_a_user_carries_their_groups_fresher_than_their_profile(
    slack: FakeSlack, client: AsyncWebClient
) -> None:
    clock = Clock()
    users = SlackUsers(ttl=3600, clock=clock, groups=SlackUserGroups(ttl=600, clock=clock))
    slack.add_user("U1", name="ada", email="ada@example.com")
    slack.add_usergroup("planners", ["U1"])

    first = await users.get(client, "T111", "U1")
    slack.usergroups.clear()
    clock.now = 601
    later = await users.get(client, "T111", "U1")

    assert first is not None and first.groups == ("planners",)
    assert later is not None and later.groups == ()
    assert len(slack.calls_to("users.info")) == 1
