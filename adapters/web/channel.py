"""What the web routes need from the server, set on the app once its services exist."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from aiohttp import web

from adapters.web.auth import WebAuth
from core.ports import ConversationStore, Inbox, ProfileStore
from core.tickets.service import TicketService
from core.worker import Worker

Probe = Callable[[], Awaitable[None]]


@dataclass(frozen=True, kw_only=True)
class WebChannel:
    name: str
    conversations: ConversationStore
    inbox: Inbox
    profiles: ProfileStore
    worker: Worker
    tickets: TicketService
    auth: WebAuth
    probes: Mapping[str, Probe]


WEB_CHANNEL = web.AppKey("web_channel", WebChannel)
