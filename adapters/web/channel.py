"""What the web routes need from the server, set on the app once its services exist."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from aiohttp import web

from adapters.web.auth import WebAuth
from adapters.web.errors import json_error
from core.limits import Limited, workspace_of
from core.messages import Sender
from core.ports import (
    ConversationStore,
    DocumentReader,
    FeedbackStore,
    GroupStore,
    Inbox,
    RateLimiter,
)
from core.relay import ReplyRelay
from core.stops import Stopper
from core.tickets.service import TicketService

log = logging.getLogger(__name__)

Probe = Callable[[], Awaitable[None]]


@dataclass(frozen=True, kw_only=True)
class WebChannel:
    """`relay` brings the answer back from whichever process answers; `work_added` tells
    the workers a message was recorded; `documents` is None where the knowledge index is
    not open (the web role beside a worker that owns the embedded shard); `limiter` counts
    messages before they are recorded (None: no rate limit configured); `groups` are those
    kept with `switchboard groups`, which a request outside a turn must look up itself."""

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
    groups: GroupStore | None = None
    stopper: Stopper | None = None

    async def within_limits(self, sender: Sender) -> None:
        """429 with Retry-After for a write (a message, a ticket) over the person's or the
        workspace's limit. Called after the body is read: a malformed request is a 400
        and not counted."""
        if self.limiter is None:
            return
        match await self.limiter.admit(sender.id, workspace_of(sender.id)):
            case Limited(scope=scope, retry_after=seconds):
                log.info("refused a web request from %s: over the %s rate limit", sender.id, scope)
                raise json_error(
                    429, f"too many requests; try again in {seconds} s",
                    headers={"Retry-After": str(seconds)}, retry_after=seconds,
                )


WEB_CHANNEL = web.AppKey("web_channel", WebChannel)
