"""`SlackChannelHistory`: a channel's latest messages, read for one person.

Read only when both can see the channel: the bot (`conversations.info` finds it, and
`conversations.history` does not answer `not_in_channel`) and the person (a public
channel, or a private one that `conversations.members` lists them in). Slack allows
commercially distributed apps one `conversations.history` per minute and 15 messages,
so each channel's messages are kept for `ttl` seconds; the access checks are not cached.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from adapters.slack.clients import SlackClients, Workspace
from adapters.slack.markup import mentioned_users, to_plain_text
from adapters.slack.translate import sender_id
from adapters.slack.users import SlackUsers
from core.channels import ChannelExcerpt, ChannelMessage
from core.errors import ToolError
from core.messages import ConversationRef, Sender

log = logging.getLogger(__name__)

MAX_MESSAGES = 15  # conversations.history's cap for commercially distributed apps
MEMBERS_PAGE = 200


class SlackChannelHistory:
    def __init__(
        self,
        clients: SlackClients,
        users: SlackUsers,
        *,
        ttl: float = 60.0,
        member_pages: int = 10,
        timeout: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._clients = clients
        self._users = users
        self._ttl = ttl
        self._member_pages = member_pages
        self._timeout = timeout
        self._clock = clock
        self._cache: dict[tuple[str, str, int], tuple[float, tuple[ChannelMessage, ...]]] = {}
        self._locks: dict[tuple[str, str, int], asyncio.Lock] = {}

    async def read(
        self, channel: str, *, reader: Sender, where: ConversationRef, limit: int
    ) -> ChannelExcerpt:
        user = _slack_user(reader, where)
        client = await self._clients.for_workspace(Workspace(team_id=where.tenant))
        try:
            async with asyncio.timeout(self._timeout):
                info = await self._info(client, channel)
                if info.get("is_private"):
                    await self._check_member(client, channel, user)
                messages = await self._messages(client, where.tenant, channel, limit)
        except SlackApiError as e:
            raise ToolError(
                f"Slack refused to read channel {channel} ({e.response.get('error')})."
            ) from e
        except (SlackClientError, TimeoutError) as e:
            raise ToolError("Slack could not be reached just now; try again later.") from e
        return ChannelExcerpt(channel=channel, name=info.get("name"), messages=messages)

    async def _info(self, client: AsyncWebClient, channel: str) -> Mapping[str, Any]:
        try:
            response = await client.conversations_info(channel=channel)
        except SlackApiError as e:
            if e.response.get("error") != "channel_not_found":
                raise
            raise ToolError(
                f"I cannot see channel {channel}: it does not exist, or it is private and I "
                "am not in it. The person can add me to it with /invite."
            ) from e
        info: Mapping[str, Any] = response["channel"]
        if info.get("is_im") or info.get("is_mpim"):
            raise ToolError("That is a direct conversation, not a channel: it is not read.")
        return info

    async def _check_member(self, client: AsyncWebClient, channel: str, user: str) -> None:
        """Private channels are read only for their members; `member_pages` pages at most."""
        cursor = None
        for _ in range(self._member_pages):
            response = await client.conversations_members(
                channel=channel, limit=MEMBERS_PAGE, cursor=cursor
            )
            if user in (response.get("members") or ()):
                return
            cursor = _next_cursor(response)
            if not cursor:
                raise ToolError(
                    f"Channel {channel} is private and the person is not a member: it is "
                    "not read for them. Tell them so, without guessing at its content."
                )
        raise ToolError(
            f"Channel {channel} has too many members to check that the person is one: it "
            "is not read."
        )

    async def _messages(
        self, client: AsyncWebClient, tenant: str, channel: str, limit: int
    ) -> tuple[ChannelMessage, ...]:
        key = (tenant, channel, min(limit, MAX_MESSAGES))
        async with self._locks.setdefault(key, asyncio.Lock()):  # one request per minute
            cached = self._cache.get(key)
            if cached is not None and cached[0] > self._clock():
                return cached[1]
            messages = await self._fetch(client, tenant, channel, key[2])
            self._forget_expired()
            self._cache[key] = (self._clock() + self._ttl, messages)
            return messages

    async def _fetch(
        self, client: AsyncWebClient, tenant: str, channel: str, limit: int
    ) -> tuple[ChannelMessage, ...]:
        try:
            response = await client.conversations_history(channel=channel, limit=limit)
        except SlackApiError as e:
            if e.response.get("error") != "not_in_channel":
                raise
            raise ToolError(
                f"I am not a member of channel {channel}, so Slack does not let me read it. "
                "The person can add me to it with /invite."
            ) from e
        found = [m for m in response.get("messages") or () if m.get("text")][:limit]
        people = {m["user"] for m in found if m.get("user")}
        people |= {u for m in found for u in mentioned_users(m["text"])}
        named = await asyncio.gather(*(self._users.get(client, tenant, u) for u in people))
        names = {u.id: u.name for u in named if u is not None}
        return tuple(_message(m, names) for m in reversed(found))  # Slack: newest first

    def _forget_expired(self) -> None:
        now = self._clock()
        for key, (expires, _) in list(self._cache.items()):
            if expires <= now:
                del self._cache[key]
                lock = self._locks.get(key)
                if lock is not None and not lock.locked():
                    del self._locks[key]


def _slack_user(reader: Sender, where: ConversationRef) -> str:
    """The verified sender's Slack user id in the workspace the request came from."""
    prefix = sender_id(where.tenant, "")
    if where.channel != "slack" or not reader.id.startswith(prefix):
        raise ToolError("Channels can only be read for a person writing from Slack.")
    return reader.id.removeprefix(prefix)


def _message(data: Mapping[str, Any], names: Mapping[str, str]) -> ChannelMessage:
    user = data.get("user")
    bot = (data.get("bot_profile") or {}).get("name") or data.get("username")
    author = (names.get(user) if user else None) or bot or user or "someone"
    return ChannelMessage(
        author=author,
        text=to_plain_text(data["text"], user_names=names).strip(),
        sent_at=datetime.fromtimestamp(float(data["ts"]), UTC),
    )


def _next_cursor(response: AsyncSlackResponse) -> str | None:
    metadata = response.get("response_metadata") or {}
    cursor = metadata.get("next_cursor")
    return cursor if isinstance(cursor, str) and cursor else None
