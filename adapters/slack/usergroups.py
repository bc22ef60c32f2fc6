"""Which Slack user groups a person is in (their handles: `@planners` → "planners"), so
an access list or the ticket agent role naming a group works for Slack senders.

One `usergroups.list` call with `include_users` reads a workspace's groups and members
at once; the result is cached per workspace and refreshed after `ttl`. Concurrent
refreshes share a single request; a failure is remembered briefly and the sender goes
on with no Slack groups (the groups kept with `switchboard groups` still count).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Mapping
from typing import Any

from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web.async_client import AsyncWebClient

log = logging.getLogger(__name__)

Members = Mapping[str, tuple[str, ...]]  # user id → handles, sorted


class SlackUserGroups:
    def __init__(
        self, *, ttl: float = 600.0, failure_ttl: float = 60.0, timeout: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ttl = ttl
        self._failure_ttl = failure_ttl
        self._timeout = timeout
        self._clock = clock
        self._cache: dict[str, tuple[float, Members]] = {}
        self._pending: dict[str, asyncio.Task[Members]] = {}

    async def of(self, client: AsyncWebClient, team: str, user_id: str) -> tuple[str, ...]:
        cached = self._cache.get(team)
        if cached is None or cached[0] <= self._clock():
            task = self._pending.get(team)
            if task is None:
                task = asyncio.ensure_future(self._refresh(client, team))
                self._pending[team] = task
                task.add_done_callback(lambda _: self._pending.pop(team, None))
            members = await asyncio.shield(task)
        else:
            members = cached[1]
        return members.get(user_id, ())

    async def _refresh(self, client: AsyncWebClient, team: str) -> Members:
        try:
            async with asyncio.timeout(self._timeout):
                response = await client.usergroups_list(include_users=True)
            members = _members(response["usergroups"])
        except (SlackApiError, SlackClientError, TimeoutError, KeyError, TypeError) as e:
            # `missing_scope`: an app installed before `usergroups:read` was asked for.
            error = e.response.get("error") if isinstance(e, SlackApiError) else None
            log.warning("usergroups.list in %s failed (%s %s); no Slack groups for now",
                        team, type(e).__name__, error or "")
            self._cache[team] = (self._clock() + self._failure_ttl, {})
            return {}
        self._cache[team] = (self._clock() + self._ttl, members)
        return members


def _members(groups: list[dict[str, Any]]) -> Members:
    found: defaultdict[str, set[str]] = defaultdict(set)
    for group in groups:
        handle = group.get("handle")
        if not handle or group.get("date_delete"):  # disabled groups keep their members
            continue
        for user in group.get("users") or ():
            found[user].add(handle)
    return {user: tuple(sorted(handles)) for user, handles in found.items()}
