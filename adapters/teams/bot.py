"""The Teams bot: what each incoming activity means for Switchboard.

Messages are recorded in the inbox and answered later by the worker (Teams waits ~15 s
for the HTTP answer and then delivers the same activity again); the bot being added
gets a welcome; the feedback invoke is stored with the answer it rates.

A message comes straight from its JSON (`receive_message`, `TeamsAdapter`'s fast path),
or, when botbuilder must read it, through a botbuilder turn (`on_message_activity`);
either way `_message` handles it, sending what it answers within the request (help, the
ticket cards) the way it came.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from functools import partial
from http import HTTPStatus
from typing import Any

from botbuilder.core import ActivityHandler, InvokeResponse, TurnContext
from botbuilder.schema import Activity, ChannelAccount

from adapters.teams import tickets
from adapters.teams.adapter import CHANNEL_ID, raw_activity
from adapters.teams.config import TeamsConfig
from adapters.teams.outbound import BotConnector
from adapters.teams.roster import TeamsRoster
from adapters.teams.translate import (
    THREAD_MARK,
    clean_text,
    conversation_type,
    mentions_bot,
    sender_id,
    tenant_of,
    thread_ref,
    to_inbound,
)
from core.feedback import Feedback
from core.inbox import Acceptance, Recorded, Requeued
from core.limits import SLOW_DOWN, Limited, workspace_of
from core.messages import Sender
from core.ports import (
    ConversationReferences,
    DeliveryLog,
    FeedbackStore,
    Inbox,
    RateLimiter,
    SentMessages,
)
from core.tickets.service import TicketService

log = logging.getLogger(__name__)

_COMMAND_NAMES = frozenset({"help"})


def help_text(name: str) -> str:
    return (
        f"**{name}** answers questions from your organisation's documents, with sources.\n\n"
        f"- In a channel or group chat, mention **@{name}** and I answer in that thread.\n"
        "- In a chat with me, just ask.\n"
        "- Rate an answer with 👍 or 👎 so it gets better."
    )


def welcome_text(name: str) -> str:
    return (
        f"Hi, I'm **{name}**. I answer questions from your organisation's documents and "
        "say where each answer came from. Ask me anything, or type **help**."
    )


class TeamsBot(ActivityHandler):  # type: ignore[misc]
    def __init__(
        self,
        *,
        config: TeamsConfig,
        inbox: Inbox,
        deliveries: DeliveryLog,
        feedback: FeedbackStore,
        sent_messages: SentMessages,
        roster: TeamsRoster,
        connector: BotConnector,
        work_added: Callable[[], None],
        tickets: TicketService | None = None,
        references: ConversationReferences | None = None,
        limiter: RateLimiter | None = None,
    ) -> None:
        self._config = config
        self._limiter = limiter
        self._inbox = inbox
        self._deliveries = deliveries
        self._feedback = feedback
        self._sent = sent_messages
        self._roster = roster
        self._connector = connector
        self._work_added = work_added
        self._tickets = tickets
        self._references = references
        self._remembered: set[tuple[str, str]] = set()

    async def on_turn(self, turn_context: TurnContext) -> None:
        activity = turn_context.activity
        if activity.channel_id != CHANNEL_ID:
            log.info("ignored a %s activity from channel %s", activity.type, activity.channel_id)
            return
        if self._tenant_allowed(raw_activity(turn_context), activity.type):
            await super().on_turn(turn_context)

    def _tenant_allowed(self, activity: Mapping[str, Any], kind: str) -> bool:
        tenant = tenant_of(activity)
        if self._config.allowed_tenants and tenant not in self._config.allowed_tenants:
            log.warning("ignored a %s activity from tenant %s (not in TEAMS_ALLOWED_TENANTS)",
                        kind, tenant)
            return False
        return True

    # ----- messages -----

    async def receive_message(self, activity: dict[str, Any], reference: dict[str, Any]) -> None:
        """A message activity from Teams as its JSON, authenticated; `reference` is its
        conversation reference (`references.reference_of`)."""
        if self._tenant_allowed(activity, "message"):
            await self._message(activity, reference, partial(self._connector.send, reference))

    async def on_message_activity(self, turn_context: TurnContext) -> None:
        async def send(activity: dict[str, Any]) -> None:
            await turn_context.send_activity(Activity().deserialize(activity))

        await self._message(raw_activity(turn_context), _reference(turn_context), send)

    async def _message(
        self, activity: Mapping[str, Any], reference: dict[str, Any], send: tickets.Send
    ) -> None:
        if (activity.get("from") or {}).get("role") == "bot":
            return
        if self._tickets is not None and tickets.is_form_submit(activity.get("value")):
            # A card's submit: no mention, even in a channel.
            await self._ticket_submit(activity, reference, send, activity["value"])
            return
        personal = conversation_type(activity) == "personal"
        if not personal and not mentions_bot(activity):
            return  # Teams only sends these with resource-specific consent; not for us
        text = clean_text(activity)
        if self._tickets is not None and tickets.is_ticket_text(text):
            if tickets.wants_form(text):
                await self._ticket_form(activity, send)
                return
            # Typed commands go the way of every message (and every channel): stored in
            # the thread, answered once, by the ticket service rather than the model.
            text = tickets.as_command(text)
        if text.lower().lstrip("/") in _COMMAND_NAMES:
            if await self._first(activity, "help"):
                await send(_said(help_text(self._config.bot_name)))
            return
        tenant = tenant_of(activity)
        if not await self._within_limits(activity, send, tenant):
            return
        sender = await self._sender(activity, reference, tenant)
        # Teams delivers the same activity again after ~15 s: the inbox refuses the copy
        # (a copy of one whose answer failed is queued again).
        message = to_inbound(activity, sender=sender, reference=reference, text=text)
        # How to reach this conversation for notices (a ticket's status changing) rides in
        # the same transaction, once per conversation and process.
        key = (tenant, str(activity["conversation"]["id"]))
        keep = self._references is not None and key not in self._remembered
        outcome = await self._inbox.accept(
            Acceptance(message=message, reference=reference if keep else None)
        )
        self._remembered.add(key)
        if isinstance(outcome, Recorded | Requeued):
            self._work_added()

    async def _ticket_form(self, activity: Mapping[str, Any], send: tickets.Send) -> None:
        """The form card, sent within the request; a redelivery is answered once."""
        if await self._first(activity, "ticket"):
            await tickets.send_form(send)

    async def _ticket_submit(
        self, activity: Mapping[str, Any], reference: dict[str, Any], send: tickets.Send,
        form: Mapping[str, Any],
    ) -> None:
        """A filled-in form: answered within the request (no model); once."""
        assert self._tickets is not None
        if not await self._first(activity, "ticket"):
            return
        tenant = tenant_of(activity)
        sender = await self._sender(activity, reference, tenant)
        origin = thread_ref(tenant, activity["conversation"]["id"])
        await self._remember(activity, reference)
        await tickets.answer_submit(send, self._tickets, sender, form, origin)

    async def _remember(self, activity: Mapping[str, Any], reference: dict[str, Any]) -> None:
        """Keep how to reach this conversation for notices (a ticket's status changing):
        once per conversation and process, not a write per message."""
        tenant = tenant_of(activity)
        key = (tenant, str(activity["conversation"]["id"]))
        if self._references is None or key in self._remembered:
            return
        await self._references.remember(thread_ref(*key), reference)
        self._remembered.add(key)

    async def _sender(
        self, activity: Mapping[str, Any], reference: Mapping[str, Any], tenant: str
    ) -> Sender:
        account = activity.get("from") or {}
        member = None
        if account.get("aadObjectId") and account.get("id"):
            member = await self._roster.get(
                self._connector,
                service_url=reference["serviceUrl"],
                tenant=tenant,
                conversation_id=str(activity["conversation"]["id"]).split(THREAD_MARK)[0],
                member_id=account["id"],
                aad_object_id=account["aadObjectId"],
            )
        return Sender(
            id=sender_id(tenant, account),
            name=(member.name if member else None) or account.get("name"),
            email=member.email if member else None,
        )

    async def _within_limits(
        self, activity: Mapping[str, Any], send: tickets.Send, tenant: str
    ) -> bool:
        """Count the message against its sender's and tenant's limits before anything else
        is spent on it. The first refusal in a window gets one short reply; the message is
        not answered, not even when Teams delivers it again after the window."""
        if self._limiter is None:
            return True
        refused = f"limited/{activity['conversation']['id']}/{activity.get('id')}"
        if await self._deliveries.seen("teams", refused):
            return False
        user = sender_id(tenant, activity.get("from") or {})
        admission = await self._limiter.admit(user, workspace_of(user))
        if not isinstance(admission, Limited):
            return True
        log.info("refused a Teams message from %s: over the %s rate limit", user, admission.scope)
        await self._deliveries.first_delivery("teams", refused)
        if admission.tell:
            await send(_said(SLOW_DOWN))
        return False

    async def _first(self, activity: Mapping[str, Any], what: str) -> bool:
        return await self._deliveries.first_delivery(
            "teams", f"{what}/{activity['conversation']['id']}/{activity.get('id')}"
        )

    # ----- the bot joins a chat or team -----

    async def on_members_added_activity(
        self, members_added: list[ChannelAccount], turn_context: TurnContext
    ) -> None:
        bot = turn_context.activity.recipient.id
        if not any(member.id == bot for member in members_added):
            return  # people joining a team the bot is in: not ours to greet
        if await self._first(raw_activity(turn_context), "welcome"):
            await turn_context.send_activity(welcome_text(self._config.bot_name))

    # ----- feedback on an answer -----

    async def on_invoke_activity(self, turn_context: TurnContext) -> InvokeResponse:
        if turn_context.activity.name != "message/submitAction":
            # The bot serves no other invoke (sign-in, Action.Execute cards…): 501, as
            # botbuilder answers. Not botbuilder's handlers: its adaptiveCard/action
            # answers a malformed value with a 500 (its 400 fails to serialize).
            log.info("an invoke the bot does not serve: %s", turn_context.activity.name)
            return InvokeResponse(status=HTTPStatus.NOT_IMPLEMENTED)
        await self._record_feedback(raw_activity(turn_context))
        # Teams shows an error unless this invoke gets 200 with an empty body.
        return InvokeResponse(status=200)

    async def _record_feedback(self, activity: Mapping[str, Any]) -> None:
        # `value` is free-form in the activity's schema: anything but the documented shape
        # is not feedback.
        value = _object(activity.get("value"))
        action = _object(value.get("actionValue"))
        reaction = action.get("reaction")
        replied_to = activity.get("replyToId")
        if value.get("actionName") != "feedback" or reaction not in ("like", "dislike"):
            log.warning("ignored a submitAction that is not like/dislike feedback")
            return
        tenant = tenant_of(activity)
        where = thread_ref(tenant, activity["conversation"]["id"])
        turn_id = await self._sent.turn_of(where, str(replied_to)) if replied_to else None
        if turn_id is None:
            log.warning("feedback on a message that carried no answer we know (%s)", replied_to)
            return
        stored = await self._feedback.record(
            Feedback(
                turn_id=turn_id,
                rater=sender_id(tenant, activity.get("from") or {}),
                rating="up" if reaction == "like" else "down",
                where=where,
                comment=_feedback_text(action.get("feedback")),
            )
        )
        if not stored:
            log.warning("feedback on turn %s does not match its conversation", turn_id)


def _reference(turn_context: TurnContext) -> dict[str, Any]:
    """The conversation reference of a turn's activity, as botbuilder builds it."""
    return dict(TurnContext.get_conversation_reference(turn_context.activity).serialize())


def _object(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _said(text: str) -> dict[str, Any]:
    """A text message as botbuilder's `TurnContext.send_activity(text)` sent it."""
    return {"type": "message", "text": text, "inputHint": "acceptingInput"}


def _feedback_text(raw: object) -> str | None:
    """Teams sends the comment as a JSON string (`{"feedbackText": "…"}`); the docs'
    sample shows plain text. Accept both."""
    if not isinstance(raw, str) or not raw.strip():
        return None
    try:
        parsed = json.loads(raw)
    except ValueError:
        return raw.strip()
    if isinstance(parsed, dict):
        text = parsed.get("feedbackText")
        return text.strip() or None if isinstance(text, str) else None
    return raw.strip()
