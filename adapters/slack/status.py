"""The assistant thread's status ("is working on it…" with a loading message), the first
sign of life of an answer: set when the turn starts, cleared by the reply (or, when the
answer only edits a message an earlier attempt left, explicitly)."""

from __future__ import annotations

import asyncio
import logging

from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web.async_client import AsyncWebClient

log = logging.getLogger(__name__)

THINKING = "Thinking…"
STATUS = "is working on it…"


async def set_status(client: AsyncWebClient, channel: str, thread_ts: str, text: str) -> bool:
    """Best effort: the answer must never wait long on it or fail because of it. An empty
    `text` clears the status (a reply clears it too, but an edited message does not)."""
    loading = {"loading_messages": [text]} if text else {}
    try:
        async with asyncio.timeout(5):
            await client.assistant_threads_setStatus(
                channel_id=channel, thread_ts=thread_ts, status=STATUS if text else "",
                **loading,
            )
    except (SlackApiError, SlackClientError, TimeoutError) as e:
        error = e.response.get("error") if isinstance(e, SlackApiError) else type(e).__name__
        log.info("could not set the status in %s: %s", channel, error)
        return False
    return True
