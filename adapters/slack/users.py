"""Who a Slack user is (name, email, time zone), from `users.info`, cached with a TTL,
and their user groups (`usergroups.py`, cached on their own, shorter, clock). What it
tells rides with the message as its `Sender`; `begin_turn` keeps it in the profile.

Concurrent lookups of one user share a single request; a failed lookup is remembered
briefly so a burst of messages does not hammer the API, and the message is answered
without the name rather than not at all.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack.usergroups import SlackUserGroups

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True, slots=True)
class SlackUser:
    id: str
    team: str
    name: str
    email: str | None = None
    time_zone: str | None = None
    is_bot: bool = False
    groups: tuple[str, ...] = ()  # handles of their Slack user groups


class SlackUsers:
    def __init__(
        self,
        *,
        ttl: float = 3600.0,
        failure_ttl: float = 60.0,
        timeout: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
        groups: SlackUserGroups | None = None,
    ) -> None:
        self._groups = groups
        self._ttl = ttl
        self._failure_ttl = failure_ttl
        self._timeout = timeout
        self._clock = clock
        self._cache: dict[tuple[str, str], tuple[float, SlackUser | None]] = {}
        self._pending: dict[tuple[str, str], asyncio.Future[SlackUser | None]] = {}

    async def get(self, client: AsyncWebClient, team: str, user_id: str) -> SlackUser | None:
        user = await self._get(client, team, user_id)
        if user is None or self._groups is None:
            return user
        return replace(user, groups=await self._groups.of(client, team, user_id))

    async def _get(self, client: AsyncWebClient, team: str, user_id: str) -> SlackUser | None:
        key = (team, user_id)
        cached = self._cache.get(key)
        if cached is not None and cached[0] > self._clock():
            return cached[1]
        pending = self._pending.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[SlackUser | None] = asyncio.get_running_loop().create_future()
        self._pending[key] = future
        try:
            user = await self._fetch(client, team, user_id)
            future.set_result(user)
        except BaseException as e:
            future.set_exception(e)
            future.exception()  # retrieved: waiters get it, and nobody else must
            raise
        finally:
            del self._pending[key]
        return user

    async def _fetch(self, client: AsyncWebClient, team: str, user_id: str) -> SlackUser | None:
        try:
            async with asyncio.timeout(self._timeout):
                response = await client.users_info(user=user_id)
            user = _user(team, response["user"])
        except (SlackApiError, SlackClientError, TimeoutError, KeyError, TypeError) as e:
            log.warning(
                "users.info for %s in %s failed (%s); answering without the name",
                user_id,
                team,
                type(e).__name__,
            )
            self._cache[(team, user_id)] = (self._clock() + self._failure_ttl, None)
            return None
        self._cache[(team, user_id)] = (self._clock() + self._ttl, user)
        return user


def _user(team: str, data: dict[str, Any]) -> SlackUser:
    profile = data.get("profile") or {}
    name = (
        profile.get("display_name")
        or profile.get("real_name")
        or data.get("real_name")
        or data.get("name")
        or data["id"]
    )
    return SlackUser(
        id=data["id"],
        team=team,
        name=name,
        email=profile.get("email") or None,
        time_zone=data.get("tz") or None,
        is_bot=bool(data.get("is_bot")),
    )
