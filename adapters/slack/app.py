"""The Slack channel: a Bolt `AsyncApp` whose listeners turn events into inbox items.

Every listener runs before the acknowledgement (`process_before_response`), so Slack
hears "200" only once the message is durably in the inbox; answering happens in the
worker. The same listeners serve HTTP (`/slack/events`) and Socket Mode.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from slack_bolt.app.async_app import AsyncApp
from slack_bolt.context.async_context import AsyncBoltContext
from slack_bolt.error import BoltUnhandledRequestError
from slack_bolt.oauth.async_oauth_settings import AsyncOAuthSettings
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.oauth.installation_store.sqlalchemy import AsyncSQLAlchemyInstallationStore
from slack_sdk.oauth.state_store.sqlalchemy import AsyncSQLAlchemyOAuthStateStore
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack import blocks, unhandled
from adapters.slack.assistant import SlackAssistantEvents
from adapters.slack.clients import SlackClients, Workspace
from adapters.slack.config import BOT_SCOPES, SlackConfig
from adapters.slack.markup import mentioned_users
from adapters.slack.sessions import StoppedStreams
from adapters.slack.tickets import SlackTickets
from adapters.slack.translate import (
    ANSWERED_SUBTYPES,
    sender_id,
    tenant_of,
    thread_ref,
    to_inbound,
)
from adapters.slack.users import SlackUsers
from core.errors import StorageError
from core.feedback import Feedback
from core.inbox import Acceptance, Recorded, Requeued
from core.limits import SLOW_DOWN, Limited, workspace_of
from core.messages import Sender
from core.ports import DeliveryLog, FeedbackStore, Inbox, ProfileStore, RateLimiter
from core.stops import NOT_YOURS, NOTHING_TO_STOP, NotAllowed, NothingToStop, Stopper
from core.tickets.service import TicketService

log = logging.getLogger(__name__)
# Set in a request's Bolt context when the message could not be recorded: the HTTP route
# then raises StorageError (503, Slack retries) instead of Bolt's 500.
STORAGE_UNAVAILABLE = "switchboard_storage_unavailable"

REFUSAL = "Sorry, I'm not available here. Please ask an admin if you need me in this channel."
FEEDBACK_THANKS = "Thanks for the feedback!"
# Deliveries refused by a rate limit, kept so that Slack's retry of one is refused too.
LIMITED = "slack-limited"
_MAX_NAMED_MENTIONS = 10


def _retried(request: AsyncBoltRequest) -> bool:
    return bool(request.headers.get("x-slack-retry-num"))


def oauth_settings(config: SlackConfig, engine: Any) -> AsyncOAuthSettings:
    """Multi-workspace install: installations and OAuth states in our SQL database,
    in the tables migration 0002 created for slack_sdk's SQLAlchemy stores."""
    assert config.client_id is not None and config.client_secret is not None
    return AsyncOAuthSettings(
        client_id=config.client_id,
        client_secret=config.client_secret,
        scopes=list(BOT_SCOPES),
        authorization_url=config.authorize_url,
        installation_store=AsyncSQLAlchemyInstallationStore(config.client_id, engine),
        installation_store_bot_only=True,
        state_store=AsyncSQLAlchemyOAuthStateStore(expiration_seconds=600, engine=engine),
    )


@contextlib.contextmanager
def _bot_token_unset() -> Iterator[None]:
    """Bolt reads SLACK_BOT_TOKEN itself and, finding it beside our client (which holds
    the same token, with SLACK_API_URL and the rate-limit handler), warns at every start
    that it is unused. Only the constructor reads it."""
    token = os.environ.pop("SLACK_BOT_TOKEN", None)
    try:
        yield
    finally:
        if token is not None:
            os.environ["SLACK_BOT_TOKEN"] = token


class SlackChannel:
    def __init__(
        self,
        *,
        config: SlackConfig,
        clients: SlackClients,
        users: SlackUsers,
        inbox: Inbox,
        deliveries: DeliveryLog,
        feedback: FeedbackStore,
        work_added: Callable[[], None],
        oauth: AsyncOAuthSettings | None = None,
        tickets: TicketService | None = None,
        limiter: RateLimiter | None = None,
        stopper: Stopper | None = None,
        stopped_streams: StoppedStreams | None = None,
        profiles: ProfileStore | None = None,
    ) -> None:
        """`stopper`: stops answers (the Stop button, an agent session's stop control);
        None: clicks are acknowledged and ignored. `stopped_streams`: where the streams
        Slack stopped are told to this process's repliers."""
        self.config = config
        self._limiter = limiter
        self._clients = clients
        self._users = users
        self._inbox = inbox
        self._deliveries = deliveries
        self._feedback = feedback
        self._work_added = work_added
        with _bot_token_unset():
            self.app = AsyncApp(
                signing_secret=config.signing_secret,
                # Socket Mode has no signatures: the connection itself is authenticated.
                request_verification_enabled=config.signing_secret is not None,
                client=clients.shared,  # carries the bot token
                oauth_settings=oauth,
                installation_store=oauth.installation_store if oauth else None,
                process_before_response=True,
                # To `_on_error`, which acknowledges them: Bolt's own answer is 404.
                raise_error_for_unhandled_request=True,
                name=config.bot_name,
            )
        self.app.event("app_mention")(self._on_mention)
        self.app.event("message")(self._on_message)
        self.app.event("app_home_opened")(self._on_home_opened)
        self.app.action(blocks.FEEDBACK_ACTION)(self._on_feedback)
        self.app.command("/switchboard")(self._on_command)
        self.app.error(self._on_error)
        self._has_tickets = tickets is not None
        if tickets is not None:
            SlackTickets(service=tickets, users=users, config=config).register(self.app)
        self._register_stops(stopper, stopped_streams or StoppedStreams())
        # The assistant container: suggested prompts, the channel a person is viewing.
        if profiles is not None:
            SlackAssistantEvents(
                profiles=profiles, first_delivery=self._first_delivery
            ).register(self.app)

    async def _on_error(self, error: Exception) -> BoltResponse | None:
        """Bolt's own handler logs every listener failure with its traceback. A database
        that refuses a write is expected (a restart): the route answers 503 and says so in
        one line; anything else is logged as Bolt would. What no listener handles is
        acknowledged (`unhandled`)."""
        if isinstance(error, BoltUnhandledRequestError):
            return unhandled.acknowledge(error)
        if not isinstance(error, StorageError):
            log.error("a Slack listener failed", exc_info=error)
        return None

    # ----- messages -----

    async def _on_mention(
        self, body: dict[str, Any], event: dict[str, Any], context: AsyncBoltContext,
        request: AsyncBoltRequest,
    ) -> None:
        if not self._ignored(event, context):
            await self._accept(body, event, context, retried=_retried(request))

    async def _on_message(
        self, body: dict[str, Any], event: dict[str, Any], context: AsyncBoltContext,
        request: AsyncBoltRequest,
    ) -> None:
        if self._ignored(event, context):
            return
        if event.get("channel_type") == "im" or self._mentions_bot(event, context):
            # A mention in a channel the bot reads also arrives as app_mention; both
            # carry the same message id and the inbox keeps the first. With rate limits,
            # app_mention alone takes it: two deliveries would count one message twice,
            # and the copy could be let in while the other is refused.
            if self._limiter is None or event.get("channel_type") == "im":
                await self._accept(body, event, context, retried=_retried(request))
        elif event.get("thread_ts"):
            # A follow-up needs no mention in a thread the bot already answers: `accept`
            # checks that in the transaction that records it.
            await self._accept(body, event, context, follow_up=True, retried=_retried(request))

    def _ignored(self, event: Mapping[str, Any], context: AsyncBoltContext) -> bool:
        if event.get("subtype") not in ANSWERED_SUBTYPES or not event.get("user"):
            return True
        if event["user"] == context.bot_user_id:
            return True
        if event.get("bot_id") or event.get("bot_profile"):
            return event.get("bot_id") == context.bot_id or not self.config.answer_bots
        return False

    def _mentions_bot(self, event: Mapping[str, Any], context: AsyncBoltContext) -> bool:
        return bool(context.bot_user_id) and context.bot_user_id in mentioned_users(
            event.get("text") or ""
        )

    async def _accept(
        self, body: Mapping[str, Any], event: Mapping[str, Any], context: AsyncBoltContext,
        *, follow_up: bool = False, retried: bool = False,
    ) -> None:
        """Record a message the bot should answer (callers have dropped ignored ones)."""
        tenant = tenant_of(context.team_id, context.enterprise_id)
        client = context.client or self._clients.shared
        if not self._allowed(event):
            await self._refuse(client, event)
            return
        try:
            if not await self._within_limits(client, body, event, tenant, retried=retried):
                return
        except StorageError:
            context[STORAGE_UNAVAILABLE] = True
            raise
        workspace = Workspace(
            team_id=context.team_id,
            enterprise_id=context.enterprise_id,
            is_enterprise_install=bool(context.is_enterprise_install),
        )
        sender, names = await self._people(client, tenant, event, context)
        message = to_inbound(
            event, workspace=workspace, bot_user_id=context.bot_user_id,
            sender=sender, user_names=names,
        )
        event_id = body.get("event_id")
        try:
            outcome = await self._inbox.accept(Acceptance(
                message=message, delivery=f"{tenant}/{event_id}" if event_id else None,
                follow_up=follow_up,
            ))
        except StorageError:
            # Bolt answers a failed listener with 500; the route makes it 503 instead.
            context[STORAGE_UNAVAILABLE] = True
            raise
        if isinstance(outcome, Recorded | Requeued):
            self._work_added()

    async def _within_limits(
        self, client: AsyncWebClient, body: Mapping[str, Any], event: Mapping[str, Any],
        tenant: str, *, retried: bool,
    ) -> bool:
        """Count the message against its sender's and workspace's limits, before anything
        else is spent on it. The first refusal in a window gets one ephemeral "slow down";
        the message is not answered, not even when Slack retries it after the window.
        Any other retry was counted when it first came."""
        if self._limiter is None:
            return True
        event_id = body.get("event_id")
        delivery = f"{tenant}/{event_id}" if event_id else None
        if retried and delivery is not None:
            return not await self._deliveries.seen(LIMITED, delivery)
        user = sender_id(tenant, event["user"])
        admission = await self._limiter.admit(user, workspace_of(user))
        if not isinstance(admission, Limited):
            return True
        log.info("refused a Slack message from %s: over the %s rate limit",
                 user, admission.scope)
        if delivery is not None:
            await self._deliveries.first_delivery(LIMITED, delivery)
        if admission.tell:
            await self._post_ephemeral(client, event, SLOW_DOWN, what="slow-down notice")
        return False

    async def _first_delivery(self, body: Mapping[str, Any], tenant: str) -> bool:
        """For events that are not messages (App Home): drop Slack's retries."""
        event_id = body.get("event_id")
        if not event_id:
            return True
        return await self._deliveries.first_delivery("slack", f"{tenant}/{event_id}")

    def _allowed(self, event: Mapping[str, Any]) -> bool:
        users, channels = self.config.allowed_users, self.config.allowed_channels
        if users and event["user"] not in users:
            return False
        in_channel = event.get("channel_type") != "im"
        return not (channels and in_channel and event["channel"] not in channels)

    async def _refuse(self, client: AsyncWebClient, event: Mapping[str, Any]) -> None:
        log.info("refused a message from %s in %s (not on the allow-lists)",
                 event["user"], event["channel"])
        await self._post_ephemeral(client, event, REFUSAL, what="refusal")

    async def _post_ephemeral(
        self, client: AsyncWebClient, event: Mapping[str, Any], text: str, *, what: str
    ) -> None:
        """Only the sender sees it; within the request, so briefly."""
        try:
            async with asyncio.timeout(2):
                await client.chat_postEphemeral(
                    channel=event["channel"], user=event["user"], text=text,
                    thread_ts=event.get("thread_ts"),
                )
        except (SlackApiError, SlackClientError, TimeoutError) as e:
            log.warning("could not send the %s: %s", what, type(e).__name__)

    async def _people(
        self,
        client: AsyncWebClient,
        tenant: str,
        event: Mapping[str, Any],
        context: AsyncBoltContext,
    ) -> tuple[Sender, dict[str, str]]:
        """The sender (name and email from users.info) and the names of people mentioned."""
        user = event["user"]
        others = [
            u for u in mentioned_users(event.get("text") or "")
            if u not in (user, context.bot_user_id)
        ][:_MAX_NAMED_MENTIONS]
        found = await asyncio.gather(*(self._users.get(client, tenant, u) for u in [user, *others]))
        names = {u.id: u.name for u in found if u is not None}
        me = found[0]
        sender = Sender(
            id=sender_id(tenant, user),
            name=me.name if me else None,
            email=me.email if me else None,
            time_zone=me.time_zone if me else None,
            groups=me.groups if me else (),
        )
        return sender, names

    # ----- App Home, feedback, the slash command -----

    async def _on_home_opened(
        self, body: dict[str, Any], event: dict[str, Any], context: AsyncBoltContext,
        client: AsyncWebClient,
    ) -> None:
        tenant = tenant_of(context.team_id, context.enterprise_id)
        if not await self._first_delivery(body, tenant):
            return
        try:
            if event.get("tab") == "messages":
                await client.assistant_threads_setSuggestedPrompts(
                    channel_id=event["channel"], title="Try asking",
                    prompts=list(blocks.SUGGESTED_PROMPTS),
                )
            else:
                view = blocks.home_view(self.config.bot_name, tickets=self._has_tickets)
                await client.views_publish(user_id=event["user"], view=view)
        except SlackApiError as e:
            log.warning("could not show the %s tab: %s", event.get("tab"), e.response.get("error"))

    async def _on_feedback(
        self, ack: Any, body: dict[str, Any], action: dict[str, Any], context: AsyncBoltContext,
        client: AsyncWebClient,
    ) -> None:
        await ack()
        parsed = blocks.parse_feedback(str(action.get("value", "")))
        message = body.get("message") or {}
        container = body.get("container") or {}
        channel = (body.get("channel") or {}).get("id") or container.get("channel_id")
        if parsed is None or not channel or not message.get("ts"):
            log.warning("ignored a feedback click without a usable value or message")
            return
        rating, turn_id = parsed
        tenant = tenant_of(context.team_id, context.enterprise_id)
        user = body["user"]["id"]
        stored = await self._feedback.record(
            Feedback(
                turn_id=turn_id,
                rater=sender_id(tenant, user),
                rating="up" if rating == "up" else "down",
                where=thread_ref(tenant, channel, message.get("thread_ts") or message["ts"]),
            )
        )
        if not stored:
            log.warning("feedback on turn %s from %s does not match its thread", turn_id, user)
            return
        try:
            await client.chat_postEphemeral(
                channel=channel, user=user, text=FEEDBACK_THANKS,
                thread_ts=message.get("thread_ts") or message["ts"],
            )
        except SlackApiError as e:
            log.info("could not thank for feedback: %s", e.response.get("error"))

    async def _on_command(self, ack: Any) -> None:
        await ack(text=blocks.help_text(self.config.bot_name), response_type="ephemeral")

    # ----- stopping an answer: the Stop button, an agent session's stop control -----
    # (kept together, apart from the other listeners)

    def _register_stops(self, stopper: Stopper | None, stopped: StoppedStreams) -> None:
        self._stopper = stopper
        self._stopped_streams = stopped
        self.app.event("agent_session_stopped")(self._on_session_stopped)
        self.app.action(blocks.STOP_ACTION)(self._on_stop_click)

    async def _clicker(self, client: AsyncWebClient, tenant: str, user: str) -> Sender:
        """Who clicked (Slack signed the request), with the email an admin may be named by."""
        found = await self._users.get(client, tenant, user)
        return Sender(id=sender_id(tenant, user), name=found.name if found else None,
                      email=found.email if found else None)

    async def _on_session_stopped(
        self, event: dict[str, Any], context: AsyncBoltContext, client: AsyncWebClient
    ) -> None:
        """The person used the session's stop control. Slack stopped the streams it lists
        (appends to them now fail) but not the session: the answer's end moves it out of
        processing. https://docs.slack.dev/reference/events/agent_session_stopped/"""
        channel, thread_ts, user = event.get("channel"), event.get("thread_ts"), event.get("user")
        for ts in event.get("streaming_message_ts") or ():
            if channel:
                self._stopped_streams.add(channel, str(ts))
        if self._stopper is None or not (channel and thread_ts and user):
            return
        tenant = tenant_of(context.team_id, context.enterprise_id)
        by = await self._clicker(client, tenant, user)
        outcome = await self._stopper.stop_thread(thread_ref(tenant, channel, thread_ts), by=by)
        if isinstance(outcome, NotAllowed):
            await self._post_ephemeral(client, {"channel": channel, "user": user,
                                                "thread_ts": thread_ts}, NOT_YOURS, what="refusal")

    async def _on_stop_click(
        self, ack: Any, body: dict[str, Any], action: dict[str, Any], context: AsyncBoltContext,
        client: AsyncWebClient,
    ) -> None:
        await ack()
        item_id = blocks.parse_stop(str(action.get("value", "")))
        container = body.get("container") or {}
        channel = (body.get("channel") or {}).get("id") or container.get("channel_id")
        user = (body.get("user") or {}).get("id")
        if item_id is None or not channel or not user or self._stopper is None:
            log.warning("ignored a Stop click without a usable value, channel or user")
            return
        tenant = tenant_of(context.team_id, context.enterprise_id)
        by = await self._clicker(client, tenant, user)
        outcome = await self._stopper.stop_item(item_id, by=by)
        message = body.get("message") or {}
        where = {"channel": channel, "user": user, "thread_ts": message.get("thread_ts")}
        if isinstance(outcome, NotAllowed):
            await self._post_ephemeral(client, where, NOT_YOURS, what="refusal")
        elif isinstance(outcome, NothingToStop):
            # The answer ended as the button was clicked (its end takes the button away).
            await self._post_ephemeral(client, where, NOTHING_TO_STOP, what="stop notice")
