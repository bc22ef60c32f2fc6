"""Tickets in Slack: the `/ticket` command, the "New ticket" modal, the "Create ticket from
message" shortcut and the Home tab buttons.

Every listener acts as the verified Slack user (`slack:<team>:<user>`) and finishes
before Slack hears the acknowledgement (`process_before_response`), so each Slack call
here has a short timeout: Slack gives up after 3 s and a `trigger_id` lives about as long.
No path here calls the model.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from slack_bolt.app.async_app import AsyncApp
from slack_bolt.context.async_context import AsyncBoltContext
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack import blocks
from adapters.slack.config import SlackConfig
from adapters.slack.markup import to_plain_text
from adapters.slack.mrkdwn import to_mrkdwn
from adapters.slack.ticket_views import (
    FORM_CALLBACK,
    TITLE,
    Origin,
    draft_from_message,
    form_errors,
    form_view,
    list_view,
    read_form,
)
from adapters.slack.translate import sender_id, tenant_of
from adapters.slack.users import SlackUsers
from core.messages import ConversationRef, Sender
from core.tickets.commands import COMMAND, run_ticket_command
from core.tickets.model import TicketError
from core.tickets.service import TicketService

log = logging.getLogger(__name__)

SHORTCUT = "create_ticket_from_message"
REFUSAL = "Sorry, I'm not available here. Please ask an admin if you need me in this channel."
NO_FORM = "Sorry, I couldn't open the form. Try `/ticket new <title>` instead."
_TEXT_MAX = 3900  # keep an ephemeral answer within Slack's ~4,000 characters
_SLACK_ERRORS = (SlackApiError, SlackClientError, TimeoutError)


class SlackTickets:
    def __init__(self, *, service: TicketService, users: SlackUsers, config: SlackConfig) -> None:
        self._service = service
        self._users = users
        self._config = config

    def register(self, app: AsyncApp) -> None:
        app.command(COMMAND)(self._on_command)
        app.view_submission(FORM_CALLBACK)(self._on_submit)
        app.message_shortcut(SHORTCUT)(self._on_shortcut)
        app.action(blocks.TICKET_NEW_ACTION)(self._on_new_button)
        app.action(blocks.TICKET_LIST_ACTION)(self._on_list_button)

    # ----- entry points -----

    async def _on_command(
        self, ack: Any, command: dict[str, Any], context: AsyncBoltContext,
        client: AsyncWebClient,
    ) -> None:
        user, channel = command["user_id"], command.get("channel_id")
        if not self._allowed(user, channel):
            await ack(text=REFUSAL, response_type="ephemeral")
            return
        text = (command.get("text") or "").strip()
        if not text:
            opened = await self._open(client, command.get("trigger_id"),
                                      form_view(Origin(channel=channel)))
            if opened:
                await ack()
            else:
                await ack(text=NO_FORM, response_type="ephemeral")
            return
        tenant = tenant_of(context.team_id, context.enterprise_id)
        origin = ConversationRef(channel="slack", tenant=tenant, conversation=channel) \
            if channel else None
        answer = await run_ticket_command(
            self._service, await self._actor(client, tenant, user), text, origin=origin
        )
        await ack(text=_clip(to_mrkdwn(answer)), response_type="ephemeral")

    async def _on_shortcut(
        self, ack: Any, shortcut: dict[str, Any], client: AsyncWebClient
    ) -> None:
        await ack()
        channel = (shortcut.get("channel") or {}).get("id")
        if not self._allowed(shortcut["user"]["id"], channel):
            await self._tell(client, shortcut["user"]["id"], Origin(channel=channel), REFUSAL)
            return
        message = shortcut.get("message") or {}
        ts = message.get("ts") or shortcut.get("message_ts")
        origin = Origin(channel=channel, thread_ts=message.get("thread_ts") or ts,
                        message_ts=ts)
        title, description = draft_from_message(to_plain_text(message.get("text") or ""))
        await self._open(client, shortcut.get("trigger_id"),
                         form_view(origin, title=title, description=description))

    async def _on_new_button(self, ack: Any, body: dict[str, Any], client: AsyncWebClient) -> None:
        await ack()
        if self._allowed(body["user"]["id"], None):
            await self._open(client, body.get("trigger_id"), form_view(Origin()))

    async def _on_list_button(
        self, ack: Any, body: dict[str, Any], context: AsyncBoltContext, client: AsyncWebClient
    ) -> None:
        await ack()
        user = body["user"]["id"]
        if not self._allowed(user, None):
            return
        tenant = tenant_of(context.team_id, context.enterprise_id)
        tickets = await self._service.list(await self._actor(client, tenant, user))
        await self._open(client, body.get("trigger_id"), list_view(tickets))

    async def _on_submit(
        self, ack: Any, body: dict[str, Any], view: dict[str, Any], context: AsyncBoltContext,
        client: AsyncWebClient,
    ) -> None:
        form = read_form(view)
        if errors := form_errors(form):
            await ack(response_action="errors", errors=errors)
            return
        user = body["user"]["id"]
        tenant = tenant_of(context.team_id, context.enterprise_id)
        origin = Origin.load(view.get("private_metadata"))
        ref = ConversationRef(channel="slack", tenant=tenant, conversation=origin.channel,
                              thread=origin.thread_ts) if origin.channel else None
        try:
            ticket = await self._service.create(
                await self._actor(client, tenant, user), title=form.title,
                description=form.description, priority=form.priority, origin=ref,
                origin_link=await self._permalink(client, origin),
            )
        except TicketError as e:
            await ack(response_action="errors", errors={TITLE: str(e)})
            return
        await ack()
        log.info("%s opened %s from a Slack form", sender_id(tenant, user), ticket.number)
        confirmation = f"Opened **{ticket.number}**: {ticket.title}."
        await self._tell(client, user, origin, to_mrkdwn(confirmation))

    # ----- helpers -----

    def _allowed(self, user: str, channel: str | None) -> bool:
        users, channels = self._config.allowed_users, self._config.allowed_channels
        if users and user not in users:
            return False
        in_channel = channel is not None and not channel.startswith("D")  # D…: a DM
        return not (channels and in_channel and channel not in channels)

    async def _actor(self, client: AsyncWebClient, tenant: str, user: str) -> Sender:
        """The verified sender, with the name, email and Slack groups agents may be listed by."""
        me = await self._users.get(client, tenant, user)
        return Sender(id=sender_id(tenant, user), name=me.name if me else None,
                      email=me.email if me else None, groups=me.groups if me else ())

    async def _open(self, client: AsyncWebClient, trigger_id: str | None, view: Any) -> bool:
        if not trigger_id:
            return False
        try:
            async with asyncio.timeout(2.5):
                await client.views_open(trigger_id=trigger_id, view=view)
        except _SLACK_ERRORS as e:
            log.warning("could not open a ticket modal: %s", _error(e))
            return False
        return True

    async def _permalink(self, client: AsyncWebClient, origin: Origin) -> str | None:
        if not (origin.channel and origin.message_ts):
            return None
        try:
            async with asyncio.timeout(1):
                found = await client.chat_getPermalink(channel=origin.channel,
                                                       message_ts=origin.message_ts)
        except _SLACK_ERRORS as e:
            log.info("no permalink for %s/%s: %s", origin.channel, origin.message_ts, _error(e))
            return None
        link = found.get("permalink")
        return link if isinstance(link, str) else None

    async def _tell(self, client: AsyncWebClient, user: str, origin: Origin, text: str) -> None:
        """Only to `user`: ephemeral where the form came from; a DM from the Home tab, or
        when the bot may not post in that channel."""
        try:
            async with asyncio.timeout(1.5):
                if origin.channel:
                    try:
                        await client.chat_postEphemeral(channel=origin.channel, user=user,
                                                        text=text, thread_ts=origin.thread_ts)
                        return
                    except SlackApiError as e:
                        log.info("no ephemeral in %s (%s); sending a DM", origin.channel,
                                 _error(e))
                await client.chat_postMessage(channel=user, text=text)
        except _SLACK_ERRORS as e:
            log.warning("could not tell %s about their ticket: %s", user, _error(e))


def _error(e: Exception) -> str:
    return str(e.response.get("error")) if isinstance(e, SlackApiError) else type(e).__name__


def _clip(text: str) -> str:
    return text if len(text) <= _TEXT_MAX else text[: _TEXT_MAX - 1] + "…"
