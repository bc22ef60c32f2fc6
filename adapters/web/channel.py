"""What the web routes need from the server, set on the app once its services exist."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from aiohttp import web

from adapters.web.auth import WebAuth
from core.ports import ConversationStore, DocumentReader, FeedbackStore, Inbox, RateLimiter
from core.relay import ReplyRelay
from core.tickets.service import TicketService

Probe = Callable[[], Awaitable[None]]


@dataclass(frozen=True, kw_only=True)
class WebChannel:
    """`relay` brings the answer back from whichever process answers; `work_added` tells
    the workers a message was recorded; `documents` is None where the knowledge index is
    not open (the web role beside a worker that owns the embedded shard); `limiter` counts
    messages before they are recorded (None: no rate limit configured)."""

    name: str
    conversations: ConversationStore
    inbox: Inbox
    relay: ReplyRelay
    work_added: Callable[[], None]
    tickets: TicketService
    auth: WebAuth
    probes: Mapping[str, Probe]
    feedback: FeedbackStore
    documents: DocumentReader | None = None
    limiter: RateLimiter | None = None


WEB_CHANNEL = web.AppKey("web_channel", WebChannel)
