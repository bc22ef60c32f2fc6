"""Wiring for the Slack channel: built from the settings when Slack is configured."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import aiohttp
from aiohttp import web
from pydantic import SecretStr

from adapters.slack.app import SlackChannel, oauth_settings
from adapters.slack.clients import ChannelPacer, SlackClients, Workspace
from adapters.slack.config import SlackConfig
from adapters.slack.http import SLACK_CHANNEL
from adapters.slack.mrkdwn import to_mrkdwn
from adapters.slack.replier import SlackRepliers
from adapters.slack.socket import SlackSocket
from adapters.slack.status import EarlyStatus
from adapters.slack.translate import sender_id
from adapters.slack.users import OnFetched, SlackUser, SlackUsers
from bots.bootstrap import Switchboard
from bots.settings import Settings
from bots.tickets import SendNotice, ticket_notifier
from core.messages import ConversationRef, Sender
from core.ports import DeliveryLog, ProfileStore
from core.profiles import Profile

log = logging.getLogger(__name__)

# Slack retries for about five minutes; a day of delivery ids is plenty.
DELIVERY_MEMORY = timedelta(days=1)


def slack_config(settings: Settings) -> SlackConfig:
    def secret(value: SecretStr | None) -> str | None:
        return value.get_secret_value() if value is not None else None

    return SlackConfig(
        signing_secret=secret(settings.slack_signing_secret),
        bot_token=secret(settings.slack_bot_token),
        app_token=secret(settings.slack_app_token),
        api_url=settings.slack_api_url,
        client_id=settings.slack_client_id,
        client_secret=secret(settings.slack_client_secret),
        allowed_channels=settings.slack_allowed_channel_ids,
        allowed_users=settings.slack_allowed_user_ids,
        answer_bots=settings.slack_answer_bots,
        bot_name=settings.bot_name,
    )


@contextlib.asynccontextmanager
async def slack_channel(sb: Switchboard, app: web.Application) -> AsyncIterator[SlackChannel]:
    config = slack_config(sb.settings)
    timeout = aiohttp.ClientTimeout(total=30, connect=10)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        oauth = oauth_settings(config, sb.engine) if config.oauth else None
        clients = SlackClients(
            session=session,
            base_url=config.api_url,
            bot_token=config.bot_token,
            installations=oauth.installation_store if oauth else None,
        )
        early = EarlyStatus()
        channel = SlackChannel(
            config=config,
            clients=clients,
            users=SlackUsers(on_fetched=_profile_saver(sb.profiles)),
            inbox=sb.inbox,
            conversations=sb.conversations,
            deliveries=sb.deliveries,
            feedback=sb.feedback,
            notify=sb.worker.notify,
            early=early,
            oauth=oauth,
            tickets=sb.tickets,
        )
        app[SLACK_CHANNEL] = channel
        sb.repliers.register("slack", SlackRepliers(clients, ChannelPacer(), early))
        ticket_notifier(app).register("slack", _thread_poster(clients))
        socket = SlackSocket(channel, config.app_token) if config.app_token else None
        pruner = asyncio.create_task(_forget_old_deliveries(sb.deliveries), name="slack-pruner")
        try:
            if socket is not None:
                await socket.start()
            yield channel
        finally:
            pruner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pruner
            if socket is not None:
                await socket.stop()
            await early.aclose()


def _thread_poster(clients: SlackClients) -> SendNotice:
    """Ticket notices into the thread a ticket came from, addressed to its requester."""

    async def send(where: ConversationRef, text: str, mention: Sender | None) -> None:
        client = await clients.for_workspace(Workspace(team_id=where.tenant))
        # The mention goes on after conversion: to_mrkdwn escapes "<".
        who = f"<@{mention.id.rsplit(':', 1)[1]}> " if mention else ""
        await client.chat_postMessage(
            channel=where.conversation, thread_ts=where.thread, text=who + to_mrkdwn(text)
        )

    return send


def _profile_saver(profiles: ProfileStore) -> OnFetched:
    async def save(user: SlackUser) -> None:
        await profiles.upsert(
            Profile(
                id=sender_id(user.team, user.id),
                name=user.name,
                email=user.email,
                time_zone=user.time_zone,
            )
        )

    return save


async def _forget_old_deliveries(deliveries: DeliveryLog) -> None:
    while True:
        try:
            forgotten = await deliveries.forget_before(datetime.now(UTC) - DELIVERY_MEMORY)
            log.debug("forgot %d old Slack delivery ids", forgotten)
        except Exception:
            log.warning("could not prune old delivery ids", exc_info=True)
        await asyncio.sleep(3600)
