"""The assistant container's events: which channel a person has open beside the
assistant, and the suggested prompts of a new assistant thread.

Apps created with the older `assistant_view` get `assistant_thread_started` and
`assistant_thread_context_changed`; `agent_view` apps get `app_context_changed`. Each
keeps the channel in the person's profile (`core.channels.SLACK_VIEWING`), which is in
SQL, so whichever process answers their next message knows it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from slack_bolt.app.async_app import AsyncApp
from slack_bolt.context.async_context import AsyncBoltContext
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack import blocks
from adapters.slack.translate import sender_id, tenant_of
from core.channels import SLACK_VIEWING
from core.errors import StorageError
from core.ports import ProfileStore
from core.profiles import Profile

log = logging.getLogger(__name__)

CHANNEL_ENTITY = "slack#/types/channel_id"
FirstDelivery = Callable[[Mapping[str, Any], str], Awaitable[bool]]


class SlackAssistantEvents:
    def __init__(self, *, profiles: ProfileStore, first_delivery: FirstDelivery) -> None:
        self._profiles = profiles
        self._first_delivery = first_delivery

    def register(self, app: AsyncApp) -> None:
        app.event("assistant_thread_started")(self._on_assistant_thread)
        app.event("assistant_thread_context_changed")(self._on_assistant_thread)
        app.event("app_context_changed")(self._on_app_context_changed)

    async def _on_assistant_thread(
        self, body: dict[str, Any], event: dict[str, Any], context: AsyncBoltContext,
        client: AsyncWebClient,
    ) -> None:
        """A new assistant thread, or another channel opened beside one: its suggested
        prompts follow the channel ("Summarise this channel" while one is open), and the
        person's profile remembers it."""
        tenant = tenant_of(context.team_id, context.enterprise_id)
        if not await self._first_delivery(body, tenant):
            return
        thread = event.get("assistant_thread") or {}
        viewed = (thread.get("context") or {}).get("channel_id") or None
        await self._suggest(client, thread, viewed)
        await self._remember(tenant, thread.get("user_id"), viewed)

    async def _suggest(
        self, client: AsyncWebClient, thread: Mapping[str, Any], viewed: str | None
    ) -> None:
        if not (thread.get("channel_id") and thread.get("thread_ts")):
            return
        prompts = [*blocks.SUGGESTED_PROMPTS, *([blocks.SUMMARISE_CHANNEL] if viewed else [])]
        try:
            await client.assistant_threads_setSuggestedPrompts(
                channel_id=thread["channel_id"], thread_ts=thread["thread_ts"],
                title="Try asking", prompts=prompts,
            )
        except (SlackApiError, SlackClientError) as e:
            log.warning("could not suggest prompts in assistant thread %s/%s: %s",
                        thread["channel_id"], thread["thread_ts"], _error(e))

    async def _on_app_context_changed(
        self, body: dict[str, Any], event: dict[str, Any], context: AsyncBoltContext,
    ) -> None:
        """Entities come ordered by relevance; an empty context means the person looks at
        nothing we can read, so the channel is forgotten."""
        if not event.get("user"):
            log.debug("ignored app_context_changed without a user (%s)", body.get("event_id"))
            return
        tenant = tenant_of(context.team_id, context.enterprise_id)
        if not await self._first_delivery(body, tenant):
            return
        entities = (event.get("context") or {}).get("entities") or []
        viewed = next(
            (e.get("value") for e in entities
             if isinstance(e, Mapping) and e.get("type") == CHANNEL_ENTITY and e.get("value")),
            None,
        )
        await self._remember(tenant, event["user"], viewed)

    async def _remember(self, tenant: str, user: str | None, channel: str | None) -> None:
        """A lost update is harmless (the next context change brings the channel again),
        so a database that refuses it does not make Slack retry the event."""
        if not user:
            return
        try:
            await self._profiles.upsert(
                Profile(id=sender_id(tenant, user), preferences={SLACK_VIEWING: channel})
            )
        except StorageError:
            log.warning("could not remember which channel %s in %s is viewing", user, tenant)


def _error(e: Exception) -> str:
    if isinstance(e, SlackApiError):
        return str(e.response.get("error"))
    return type(e).__name__
