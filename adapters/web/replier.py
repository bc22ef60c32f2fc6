"""Repliers for the web request that waits: server-sent events, or a collector for the
JSON answer. (The worker reaches them through the reply relay, `core/relay.py`.)"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict
from typing import Any

from aiohttp_sse import EventSourceResponse

from adapters.web.render import to_html
from core.replies import (
    ReplyDone,
    ReplyEvent,
    ReplyFailed,
    ReplyWithdrawn,
    Status,
    TextDelta,
    Titled,
    ToolProgress,
)

log = logging.getLogger(__name__)


def event_payload(event: ReplyEvent) -> tuple[str, dict[str, Any]]:
    """The SSE event name and JSON body for a reply event (the page's protocol)."""
    match event:
        case Status(text=text):
            return "status", {"text": text}
        case TextDelta(text=text):
            return "delta", {"text": text}
        case ToolProgress():
            return "tool", {k: v for k, v in asdict(event).items() if k != "kind"}
        case Titled(title=title):
            return "title", {"title": title}
        case ReplyDone():
            return "done", done_body(event)
        case ReplyFailed(text=text, reference=reference):
            return "error", {"error": text, "reference": reference, "retryable": True}
        case ReplyWithdrawn():
            # Another worker took the message over and answers from the start: what was
            # shown so far is dropped.
            return "restart", {}


def done_body(done: ReplyDone) -> dict[str, Any]:
    return {
        "reply": done.text,
        "html": to_html(done.text),
        "citations": [asdict(c) for c in done.citations],
        "turn_id": done.turn_id,
        "stopped": done.stopped,
    }


class SseReplier:
    """Streams events to one browser or client. If the client goes away the answer is
    still finished and stored; only the writing stops."""

    def __init__(self, response: EventSourceResponse, *, extra: dict[str, Any]) -> None:
        self._response = response
        self._extra = extra
        self._connected = True

    async def send(self, event: ReplyEvent) -> None:
        name, body = event_payload(event)
        if name in ("done", "error"):
            body = {**body, **self._extra}
        await self.emit(name, body)

    async def emit(self, name: str, body: dict[str, Any]) -> None:
        if not self._connected:
            return
        try:
            await self._response.send(json.dumps(body), event=name)
        except (ConnectionResetError, TimeoutError, RuntimeError):
            self._connected = False
            log.info("web client left before the answer was complete; it is still stored")


class CollectingReplier:
    """Keeps the outcome for a plain JSON response."""

    def __init__(self) -> None:
        self.done: ReplyDone | None = None
        self.failed: ReplyFailed | None = None

    async def send(self, event: ReplyEvent) -> None:
        match event:
            case ReplyDone():
                self.done = event
            case ReplyFailed():
                self.failed = event
            case _:
                pass
