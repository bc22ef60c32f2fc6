"""The "thinking…" status, shown as soon as a message is accepted.

The worker may be busy with other answers for a while; setting the status right after
the inbox has the message gives the person a sign of life at once. The reply waits for
that call before it writes, since a status that lands after the answer would linger.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web.async_client import AsyncWebClient

log = logging.getLogger(__name__)

THINKING = "Thinking…"
STATUS = "is working on it…"


async def set_status(client: AsyncWebClient, channel: str, thread_ts: str, text: str) -> bool:
    """Best effort: the answer must never wait long on it or fail because of it."""
    try:
        async with asyncio.timeout(5):
            await client.assistant_threads_setStatus(
                channel_id=channel, thread_ts=thread_ts, status=STATUS, loading_messages=[text]
            )
    except (SlackApiError, SlackClientError, TimeoutError) as e:
        error = e.response.get("error") if isinstance(e, SlackApiError) else type(e).__name__
        log.info("could not set the status in %s: %s", channel, error)
        return False
    return True


class EarlyStatus:
    """Status calls started at acceptance, by message id, until the reply takes over."""

    def __init__(self) -> None:
        self._calls: dict[str, asyncio.Task[bool]] = {}

    def start(self, message_id: str, client: AsyncWebClient, channel: str, thread_ts: str) -> None:
        if len(self._calls) > 10_000:  # replies that never came (another process answered)
            for key in [k for k, t in self._calls.items() if t.done()]:
                del self._calls[key]
        self._calls[message_id] = asyncio.create_task(
            set_status(client, channel, thread_ts, THINKING), name=f"slack-status-{message_id}"
        )

    async def taken_over(self, message_id: str) -> bool:
        """Wait for the early call, if any; True if it showed "Thinking…"."""
        task = self._calls.pop(message_id, None)
        if task is None:
            return False
        return await task

    async def aclose(self) -> None:
        for task in self._calls.values():
            task.cancel()
        for task in self._calls.values():
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._calls.clear()
