"""Wiring for what follows a ticket change: a notice in the requester's thread and the
outbound webhook (when `SWITCHBOARD_TICKET_WEBHOOK_URL` is set).

In `create_app`, just before the worker (so it starts after the channels, which register
their senders, and stops before them, while they can still post):

    app.cleanup_ctx.append(ticket_context(SWITCHBOARD))

A channel's wiring registers how it posts into a thread, in its own cleanup context:

    ticket_notifier(app).register("slack", send)  # send(where, text, mention)
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager

import aiohttp
from aiohttp import web

from adapters.webhooks.delivery import TicketWebhook
from bots.bootstrap import Switchboard
from core.messages import ConversationRef, Sender
from core.tickets.notices import TicketNotices

log = logging.getLogger(__name__)

SendNotice = Callable[[ConversationRef, str, Sender | None], Awaitable[None]]
CleanupContext = Callable[[web.Application], AsyncIterator[None]]


class ChannelNotifier:
    """The `ThreadNotifier` for every channel: dispatches on `where.channel` to the send
    function that channel registered. Channels without one (web, terminal) have nowhere
    to push to. Sending happens in tasks this notifier owns, so the change that caused
    a notice never waits on a chat platform; at most `max_pending` wait, `concurrency`
    are sent at once, each within `timeout` seconds."""

    def __init__(
        self, *, timeout: float = 15.0, concurrency: int = 4, max_pending: int = 200,
        drain_seconds: float = 5.0,
    ) -> None:
        self._senders: dict[str, SendNotice] = {}
        self._timeout = timeout
        self._slots = asyncio.Semaphore(concurrency)
        self._max_pending = max_pending
        self._drain_seconds = drain_seconds
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False

    def register(self, channel: str, send: SendNotice) -> None:
        self._senders[channel] = send

    async def notify(
        self, where: ConversationRef, text: str, *, mention: Sender | None = None
    ) -> None:
        send = self._senders.get(where.channel)
        if send is None:
            log.debug("no %s sender registered: the notice for %s stays unsent",
                      where.channel, where.conversation)
            return
        if self._closed or len(self._tasks) >= self._max_pending:
            log.warning("dropped a notice for %s conversation %s (%s)", where.channel,
                        where.conversation, "shut down" if self._closed else "too many pending")
            return
        task = asyncio.create_task(self._send(send, where, text, mention),
                                   name=f"notice-{where.channel}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(
        self, send: SendNotice, where: ConversationRef, text: str, mention: Sender | None
    ) -> None:
        async with self._slots:
            try:
                async with asyncio.timeout(self._timeout):
                    await send(where, text, mention)
            except Exception:
                log.exception("could not post a notice to %s conversation %s thread %s",
                              where.channel, where.conversation, where.thread)

    async def aclose(self) -> None:
        """Let pending notices finish for up to `drain_seconds`, then cancel the rest."""
        self._closed = True
        if not self._tasks:
            return
        _, late = await asyncio.wait(set(self._tasks), timeout=self._drain_seconds)
        for task in late:
            task.cancel()
        await asyncio.gather(*late, return_exceptions=True)
        if late:
            log.warning("shutting down: %d thread notices were not sent", len(late))


@asynccontextmanager
async def ticket_events(
    sb: Switchboard, notifier: ChannelNotifier | None = None
) -> AsyncIterator[ChannelNotifier]:
    """Subscribe the thread notices (and the webhook, when configured) to `sb.tickets`;
    on exit, send what is pending for a few seconds and stop. `TicketService` has no
    unsubscribe: after exit the listeners drop (and log) what they are given."""
    notifier = notifier or ChannelNotifier()
    settings = sb.settings
    async with AsyncExitStack() as stack:
        stack.push_async_callback(notifier.aclose)
        sb.tickets.subscribe(TicketNotices(notifier))
        if settings.ticket_webhook_url is not None:
            secret = settings.ticket_webhook_secret
            assert secret is not None, "Settings require the secret with the URL"
            session = await stack.enter_async_context(aiohttp.ClientSession())
            webhook = TicketWebhook(settings.ticket_webhook_url, secret.get_secret_value(),
                                    session)
            await stack.enter_async_context(webhook)
            sb.tickets.subscribe(webhook)
        yield notifier


TICKET_NOTIFIER = web.AppKey("ticket_notifier", ChannelNotifier)


def ticket_notifier(app: web.Application) -> ChannelNotifier:
    """The app's notifier, made on first use, so a channel can register its sender whether
    its cleanup context starts before or after `ticket_context`."""
    notifier = app.get(TICKET_NOTIFIER)
    if notifier is None:
        notifier = app[TICKET_NOTIFIER] = ChannelNotifier()
    return notifier


def ticket_context(key: web.AppKey[Switchboard]) -> CleanupContext:
    """A cleanup context running `ticket_events` on the app's `Switchboard` (found under
    `key`: bots.server's `SWITCHBOARD`, passed in to keep the import one-way)."""

    async def tickets(app: web.Application) -> AsyncIterator[None]:
        async with ticket_events(app[key], ticket_notifier(app)):
            yield

    return tickets
