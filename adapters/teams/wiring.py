"""The Teams channel put together from its configuration and the core's ports: the
authenticated adapter (inbound checks) and the Bot Connector client (outbound, with the
app's tokens) for everything; the bot where activities are received; the repliers where
they are answered; notices either way."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import aiohttp

from adapters.teams.adapter import TeamsAdapter, TeamsAuthentication
from adapters.teams.bot import TeamsBot
from adapters.teams.config import TeamsConfig
from adapters.teams.credentials import AppTokens
from adapters.teams.notices import TeamsNotices
from adapters.teams.outbound import BotConnector, ServiceHosts
from adapters.teams.replier import TeamsRepliers
from adapters.teams.roster import TeamsRoster
from core.ports import (
    ConversationReferences,
    DeliveryLog,
    Exclusive,
    FeedbackStore,
    Inbox,
    RateLimiter,
    SentMessages,
)
from core.tickets.service import TicketService


@dataclass(frozen=True, kw_only=True, slots=True)
class TeamsWiring:
    adapter: TeamsAdapter
    bot: TeamsBot | None  # receiving (the web role); None in a worker
    repliers: TeamsRepliers
    notices: TeamsNotices


@contextlib.asynccontextmanager
async def teams_wiring(
    config: TeamsConfig,
    *,
    receive: bool,
    inbox: Inbox,
    deliveries: DeliveryLog,
    feedback: FeedbackStore,
    sent_messages: SentMessages,
    references: ConversationReferences,
    tickets: TicketService | None,
    work_added: Callable[[], None],
    streams: Exclusive | None = None,
    limiter: RateLimiter | None = None,
) -> AsyncIterator[TeamsWiring]:
    timeout = aiohttp.ClientTimeout(total=30, connect=10)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        tokens = AppTokens.for_config(config)
        connector = BotConnector(
            session, tokens, scope=config.cloud.oauth_scope,
            hosts=ServiceHosts(config.service_hosts),
        )
        adapter = TeamsAdapter(TeamsAuthentication(config, session, tokens))
        repliers = TeamsRepliers(connector, sent=sent_messages, notes=inbox,
                                 streams=streams)
        bot = TeamsBot(
            config=config, inbox=inbox, deliveries=deliveries, feedback=feedback,
            sent_messages=sent_messages, roster=TeamsRoster(), connector=connector,
            work_added=work_added, tickets=tickets, references=references, limiter=limiter,
        ) if receive else None
        yield TeamsWiring(
            adapter=adapter, bot=bot, repliers=repliers,
            notices=TeamsNotices(repliers, references),
        )
