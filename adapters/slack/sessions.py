"""Slack agent sessions: the thread's session is `processing` while an answer is written
(Slack then shows its own stop control) and `active` again when it ends; its title is
the conversation's.

Only apps declared as agents may create sessions, and the stop control only works once
the app subscribes to `agent_session_stopped` (until then setStatus answers with the
warning `missing_agent_session_stopped_event_subscription` and the user sees a loading
indicator that cannot be clicked). A workspace that refuses sessions is remembered for a
while: its answers get our own Stop button instead. Nothing here ever fails an answer.
https://docs.slack.dev/ai/agent-sessions/
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable

from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web.async_client import AsyncWebClient

log = logging.getLogger(__name__)

REFUSAL_TTL = 3600.0  # seconds a workspace that refused sessions is not asked again
NO_STOP_CONTROL = "missing_agent_session_stopped_event_subscription"
# Failures that say nothing about the workspace: this thread, or this moment.
_PASSING = frozenset({
    "ratelimited", "fatal_error", "internal_error", "request_timeout", "service_unavailable",
    "channel_not_found", "thread_not_found", "invalid_thread_ts", "not_in_channel",
    "session_not_found", "message_not_found",
})
_TIMEOUT = 5.0


class AgentSessions:
    """One per process, shared by the repliers: which workspaces refuse sessions."""

    def __init__(
        self, *, refusal_ttl: float = REFUSAL_TTL, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._ttl = refusal_ttl
        self._clock = clock
        self._refused: dict[str, float] = {}  # workspace → until when
        self._title_failures: set[str] = set()  # workspaces whose title failure was logged

    def refused(self, workspace: str) -> bool:
        until = self._refused.get(workspace)
        return until is not None and until > self._clock()

    async def processing(
        self, client: AsyncWebClient, workspace: str, channel: str, thread_ts: str,
        *, user: str | None = None, title: str | None = None,
    ) -> bool:
        """Mark the thread's session as processing; whether Slack shows its stop control.
        `title` names a session this creates (Slack ignores it for one that exists)."""
        if self.refused(workspace):
            return False
        try:
            async with asyncio.timeout(_TIMEOUT):
                response = await client.agents_sessions_setStatus(
                    channel_id=channel, thread_ts=thread_ts, status="processing",
                    initiator_user_id=user, title=title[:200] if title else None,
                )
        except (SlackApiError, SlackClientError, TimeoutError) as e:
            error = _error(e)
            if isinstance(e, SlackApiError) and error not in _PASSING:
                self._refuse(workspace, error)
            else:
                log.info("could not set the agent session in %s processing (%s)", channel, error)
            return False
        warning = str(response.get("warning") or "")
        if NO_STOP_CONTROL in warning.split(","):
            self._refuse(workspace, NO_STOP_CONTROL)
            return False
        return True

    async def active(self, client: AsyncWebClient, channel: str, thread_ts: str) -> None:
        """Out of processing (the answer ended some way other than a stopped stream)."""
        try:
            async with asyncio.timeout(_TIMEOUT):
                await client.agents_sessions_setStatus(
                    channel_id=channel, thread_ts=thread_ts, status="active"
                )
        except (SlackApiError, SlackClientError, TimeoutError) as e:
            log.info("could not set the agent session in %s active (%s)", channel, _error(e))

    async def title(
        self, client: AsyncWebClient, workspace: str, channel: str, thread_ts: str, title: str,
        *, session: bool,
    ) -> None:
        """Name the thread where Slack shows names: its agent session, else (in a DM) its
        assistant thread. A failure is logged once per workspace."""
        title = title.strip()[:200] or "Conversation"
        try:
            async with asyncio.timeout(_TIMEOUT):
                if session:
                    await client.agents_sessions_rename(
                        channel_id=channel, thread_ts=thread_ts, title=title
                    )
                elif channel.startswith("D"):
                    await client.assistant_threads_setTitle(
                        channel_id=channel, thread_ts=thread_ts, title=title
                    )
        except (SlackApiError, SlackClientError, TimeoutError) as e:
            if workspace not in self._title_failures:
                self._title_failures.add(workspace)
                log.warning("could not name a thread in workspace %s (%s); not said again",
                            workspace, _error(e))

    def _refuse(self, workspace: str, error: str) -> None:
        log.info("workspace %s refuses agent sessions (%s): Stop buttons for %d s",
                 workspace, error, int(self._ttl))
        self._refused[workspace] = self._clock() + self._ttl


class StoppedStreams:
    """Streams Slack itself stopped (the person used the session's stop control): appends
    to them fail with `message_not_in_streaming_state`, which then means neither an
    expired stream nor another worker's takeover. Known to this process only; a worker
    elsewhere treats the failure as an expired stream, which ends the same way."""

    def __init__(self, *, size: int = 1024) -> None:
        self._size = size
        self._stopped: OrderedDict[tuple[str, str], None] = OrderedDict()

    def add(self, channel: str, ts: str) -> None:
        self._stopped[(channel, ts)] = None
        while len(self._stopped) > self._size:
            self._stopped.popitem(last=False)

    def __contains__(self, key: tuple[str, str]) -> bool:
        return key in self._stopped


def _error(e: Exception) -> str:
    if isinstance(e, SlackApiError):
        return str(e.response.get("error", "error"))
    return type(e).__name__
