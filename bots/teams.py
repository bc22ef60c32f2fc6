"""Wiring for the Teams channel: built from the settings when MicrosoftAppId is set."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web

from adapters.teams.adapter import TeamsAdapter, TeamsAuthentication
from adapters.teams.auth import SigningKeys
from adapters.teams.bot import TeamsBot
from adapters.teams.config import DEFAULT_SERVICE_HOSTS, CloudKeys, TeamsConfig
from adapters.teams.credentials import AppTokens
from adapters.teams.http import TEAMS_ENDPOINT, TeamsEndpoint
from adapters.teams.render import to_teams_markdown
from adapters.teams.replier import TeamsRepliers, text_activity
from adapters.teams.roster import Member, OnFetched, TeamsRoster
from adapters.teams.translate import CHANNEL
from adapters.teams.typing import EarlyTyping
from bots.bootstrap import Switchboard
from bots.settings import Settings
from bots.tickets import SendNotice, ticket_notifier
from core.errors import ConfigurationError
from core.messages import ConversationRef, Sender
from core.ports import ConversationReferences, ProfileStore
from core.profiles import Profile

log = logging.getLogger(__name__)


def teams_config(settings: Settings) -> TeamsConfig:
    assert settings.microsoft_app_id is not None
    keys = CloudKeys(
        channel_service=settings.teams_channel_service,
        openid_metadata_url=settings.teams_openid_metadata_url,
        token_issuer=settings.teams_token_issuer,
        login_url=settings.teams_login_url,
        oauth_scope=settings.teams_oauth_scope,
        oauth_url=settings.teams_oauth_url,
        validate_authority=settings.teams_validate_authority,
    )
    try:
        cloud = keys.resolve()
    except ValueError as e:
        raise ConfigurationError([f"CHANNEL_SERVICE: {e}"]) from None
    password = settings.microsoft_app_password
    return TeamsConfig(
        app_id=settings.microsoft_app_id,
        app_password=password.get_secret_value() if password else None,
        app_type=settings.microsoft_app_type,
        tenant_id=settings.microsoft_app_tenant_id,
        cloud=cloud,
        allowed_tenants=settings.teams_allowed_tenant_ids,
        service_hosts=settings.teams_service_hosts or DEFAULT_SERVICE_HOSTS,
        bot_name=settings.bot_name,
    )


@contextlib.asynccontextmanager
async def teams_channel(sb: Switchboard, app: web.Application) -> AsyncIterator[TeamsEndpoint]:
    config = teams_config(sb.settings)
    timeout = aiohttp.ClientTimeout(total=30, connect=10)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        authentication = TeamsAuthentication(config, session, AppTokens.for_config(config))
        adapter = TeamsAdapter(authentication)
        repliers = TeamsRepliers(adapter, app_id=config.app_id, sent=sb.sent_messages)
        early = EarlyTyping(repliers.sender_for)
        bot = TeamsBot(
            config=config,
            inbox=sb.inbox,
            deliveries=sb.deliveries,
            feedback=sb.feedback,
            sent_messages=sb.sent_messages,
            roster=TeamsRoster(on_fetched=_profile_saver(sb.profiles)),
            notify=sb.worker.notify,
            on_accepted=early.start,
            tickets=sb.tickets,
            references=sb.references,
        )
        endpoint = TeamsEndpoint(adapter=adapter, bot=bot)
        app[TEAMS_ENDPOINT] = endpoint
        sb.repliers.register(CHANNEL, repliers)
        ticket_notifier(app).register(CHANNEL, _thread_poster(repliers, sb.references))
        try:
            yield endpoint
        finally:
            await early.aclose()


def _thread_poster(repliers: TeamsRepliers, references: ConversationReferences) -> SendNotice:
    """Ticket notices into the Teams conversation (or channel thread) a ticket came from,
    through the reference the bot kept when it last heard from there."""

    async def send(where: ConversationRef, text: str, mention: Sender | None) -> None:
        reference = await references.get(where)
        if reference is None:
            log.warning("no way to reach Teams conversation %s for a notice", where.conversation)
            return
        await repliers.sender_for(reference)(text_activity(to_teams_markdown(text)))

    return send


async def check_teams(settings: Settings) -> str:
    """For `switchboard doctor`: the channel's signing keys load and Azure AD issues
    this app a bot token."""
    config = teams_config(settings)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        keys = await SigningKeys(session, config.cloud.openid_metadata_url).refresh()
    await AppTokens.for_config(config).get(config.cloud.oauth_scope)
    return f", {keys} signing keys, bot token issued"


def _profile_saver(profiles: ProfileStore) -> OnFetched:
    async def save(member: Member) -> None:
        await profiles.upsert(
            Profile(
                id=f"{CHANNEL}:{member.tenant}:{member.aad_object_id}",
                name=member.name,
                email=member.email,
            )
        )

    return save
