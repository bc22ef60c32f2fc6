"""The Slack channel put together from its configuration and the core's ports: one HTTP
session and Web API clients for everything; the Bolt app (and Socket Mode) where messages
are received; the repliers where they are answered; notices either way."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp

from adapters.slack.app import SlackChannel, oauth_settings
from adapters.slack.clients import ChannelPacer, SlackClients
from adapters.slack.config import SlackConfig
from adapters.slack.history import SlackChannelHistory
from adapters.slack.notices import SlackNotices
from adapters.slack.replier import SlackRepliers
from adapters.slack.sessions import AgentSessions, StoppedStreams
from adapters.slack.socket import SlackSocket
from adapters.slack.usergroups import SlackUserGroups
from adapters.slack.users import SlackUsers
from core.ports import DeliveryLog, FeedbackStore, Inbox, ProfileStore, RateLimiter
from core.stops import Stopper
from core.tickets.service import TicketService


@dataclass(frozen=True, kw_only=True, slots=True)
class SlackWiring:
    channel: SlackChannel | None  # receiving (the web role); None in a worker
    repliers: SlackRepliers
    notices: SlackNotices
    history: SlackChannelHistory  # channels read for the `read_channel` tool


@contextlib.asynccontextmanager
async def slack_wiring(
    config: SlackConfig,
    *,
    receive: bool,
    inbox: Inbox,
    deliveries: DeliveryLog,
    feedback: FeedbackStore,
    tickets: TicketService | None,
    work_added: Callable[[], None],
    engine: Any = None,
    limiter: RateLimiter | None = None,
    stopper: Stopper | None = None,
    profiles: ProfileStore | None = None,
) -> AsyncIterator[SlackWiring]:
    """`engine`: the AsyncEngine slack_sdk's installation store needs with OAuth.
    `stopper`: what the Stop button and the agent session's stop control call."""
    timeout = aiohttp.ClientTimeout(total=30, connect=10)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        oauth = oauth_settings(config, engine) if config.oauth else None
        clients = SlackClients(
            session=session,
            base_url=config.api_url,
            bot_token=config.bot_token,
            installations=oauth.installation_store if oauth else None,
        )
        stopped = StoppedStreams()  # heard by the channel, minded by this process's repliers
        users = SlackUsers(groups=SlackUserGroups())
        channel = SlackChannel(
            config=config, clients=clients, users=users,
            inbox=inbox, deliveries=deliveries, feedback=feedback, work_added=work_added, oauth=oauth,
            tickets=tickets, limiter=limiter, stopper=stopper, stopped_streams=stopped,
            profiles=profiles,
        ) if receive else None
        socket = (
            SlackSocket(channel, config.app_token)
            if channel is not None and config.app_token else None
        )
        if socket is not None:
            await socket.start()
        try:
            yield SlackWiring(
                channel=channel,
                repliers=SlackRepliers(clients, ChannelPacer(), notes=inbox,
                                       sessions=AgentSessions(), stopped=stopped),
                notices=SlackNotices(clients),
                history=SlackChannelHistory(clients, users),
            )
        finally:
            if socket is not None:
                await socket.stop()
