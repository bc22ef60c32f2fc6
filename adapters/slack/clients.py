"""Slack Web API clients: one HTTP session, `SLACK_API_URL`, 429s retried after
`Retry-After`, the right bot token per workspace, and paced posting per channel."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

import aiohttp
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.oauth.installation_store.async_installation_store import AsyncInstallationStore
from slack_sdk.web.async_client import AsyncWebClient

from core.errors import ConfigurationError


@dataclass(frozen=True, kw_only=True, slots=True)
class Workspace:
    """Which installation a message belongs to (what the token lookup needs)."""

    team_id: str | None
    enterprise_id: str | None = None
    is_enterprise_install: bool = False


class SlackClients:
    def __init__(
        self,
        *,
        session: aiohttp.ClientSession,
        base_url: str,
        bot_token: str | None = None,
        installations: AsyncInstallationStore | None = None,
        timeout: int = 15,
        max_rate_limit_retries: int = 3,
    ) -> None:
        if (bot_token is None) == (installations is None):
            raise ValueError("give a bot token or an installation store")
        self._session = session
        self._base_url = base_url if base_url.endswith("/") else base_url + "/"
        self._bot_token = bot_token
        self._installations = installations
        self._timeout = timeout
        self._retries = max_rate_limit_retries
        self._shared = self.client(bot_token)

    @property
    def shared(self) -> AsyncWebClient:
        """The app's client: the bot token (one workspace) or none (OAuth; Bolt sets the
        installation's token per request on a copy)."""
        return self._shared

    def client(self, token: str | None) -> AsyncWebClient:
        # Only rate limits are retried: a POST that failed mid-air may have been
        # delivered, and posting it again would answer twice.
        return AsyncWebClient(
            token=token,
            base_url=self._base_url,
            session=self._session,
            timeout=self._timeout,
            retry_handlers=[AsyncRateLimitErrorRetryHandler(max_retry_count=self._retries)],
        )

    async def for_workspace(self, workspace: Workspace) -> AsyncWebClient:
        if self._installations is None:
            return self._shared
        bot = await self._installations.async_find_bot(
            enterprise_id=workspace.enterprise_id,
            team_id=workspace.team_id,
            is_enterprise_install=workspace.is_enterprise_install,
        )
        if bot is None or not bot.bot_token:
            raise ConfigurationError(
                [f"Switchboard is not installed in Slack workspace {workspace.team_id}"]
            )
        return self.client(bot.bot_token)


class ChannelPacer:
    """A token bucket per channel: Slack allows about one `chat.postMessage` per second
    per channel, with short bursts."""

    def __init__(
        self, *, rate: float = 1.0, burst: int = 3, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._rate = rate
        self._burst = burst
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}

    async def wait(self, channel: str) -> None:
        now = self._clock()
        tokens, last = self._buckets.get(channel, (float(self._burst), now))
        tokens = min(float(self._burst), tokens + (now - last) * self._rate)
        delay = 0.0 if tokens >= 1 else (1 - tokens) / self._rate
        # Taken now, so callers that wait concurrently queue behind each other.
        self._buckets[channel] = (tokens - 1, now)
        if len(self._buckets) > 10_000:
            self._forget_idle(now)
        if delay > 0:
            await asyncio.sleep(delay)

    def _forget_idle(self, now: float) -> None:
        full = self._burst / self._rate
        for channel, (_, last) in list(self._buckets.items()):
            if now - last > full:
                del self._buckets[channel]
