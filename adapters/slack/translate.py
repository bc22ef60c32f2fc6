"""Slack events → the core's `InboundMessage`, and back to where a reply goes.

Thread key: (team, channel, thread root ts). A message's id is `channel:ts`, the same
whether it arrived as `app_mention` or as `message.channels`, so the inbox answers once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from adapters.slack.clients import Workspace
from adapters.slack.markup import strip_mention, to_plain_text
from core.messages import Attachment, ConversationRef, InboundMessage, Sender

# Subtypes that are still a person talking; edits, joins, deletions and the
# `message_changed` echo of every chat.update the bot makes are not.
ANSWERED_SUBTYPES = frozenset({None, "file_share", "thread_broadcast"})
EMPTY_MENTION = "Hello!"


@dataclass(frozen=True, kw_only=True, slots=True)
class SlackTarget:
    """Where an answer goes and who it streams to."""

    workspace: Workspace
    channel: str
    thread_ts: str
    user: str
    user_team: str | None


def tenant_of(team_id: str | None, enterprise_id: str | None) -> str:
    # Org-wide installs can send events with no team; the enterprise is the tenant then.
    return team_id or enterprise_id or "unknown"


def message_id(channel: str, ts: str) -> str:
    return f"{channel}:{ts}"


def thread_ref(tenant: str, channel: str, thread_ts: str) -> ConversationRef:
    return ConversationRef(channel="slack", tenant=tenant, conversation=channel, thread=thread_ts)


def sender_id(tenant: str, user: str) -> str:
    return f"slack:{tenant}:{user}"


def to_inbound(
    event: Mapping[str, Any],
    *,
    workspace: Workspace,
    bot_user_id: str | None,
    sender: Sender,
    user_names: Mapping[str, str],
) -> InboundMessage:
    tenant = tenant_of(workspace.team_id, workspace.enterprise_id)
    channel, ts = event["channel"], event["ts"]
    root = event.get("thread_ts") or ts
    text = event.get("text") or ""
    if bot_user_id:
        text = strip_mention(text, bot_user_id)
    text = to_plain_text(text, user_names=user_names).strip()
    files = tuple(_attachment(f) for f in event.get("files") or ())
    return InboundMessage(
        id=message_id(channel, ts),
        conversation=thread_ref(tenant, channel, root),
        sender=sender,
        text=text or ("" if files else EMPTY_MENTION),
        sent_at=datetime.fromtimestamp(float(ts), UTC),
        is_direct=event.get("channel_type") == "im",
        attachments=files,
        channel_data={
            "team_id": workspace.team_id,
            "enterprise_id": workspace.enterprise_id,
            "is_enterprise_install": workspace.is_enterprise_install,
            "user": event["user"],
            "user_team": event.get("user_team") or event.get("team") or workspace.team_id,
            "ts": ts,
        },
    )


def target_of(message: InboundMessage) -> SlackTarget:
    data = message.channel_data
    ref = message.conversation
    return SlackTarget(
        workspace=Workspace(
            team_id=data.get("team_id"),
            enterprise_id=data.get("enterprise_id"),
            is_enterprise_install=bool(data.get("is_enterprise_install")),
        ),
        channel=ref.conversation,
        thread_ts=ref.thread or data["ts"],
        user=data["user"],
        user_team=data.get("user_team"),
    )


def _attachment(file: Mapping[str, Any]) -> Attachment:
    return Attachment(
        name=file.get("name") or file.get("title") or file.get("id", "file"),
        content_type=file.get("mimetype"),
        url=file.get("url_private"),
        size=file.get("size"),
    )
