"""Teams activities (as JSON) → the core's `InboundMessage`, and back to where a reply goes.

Thread key: (tenant, conversation id). A channel reply's conversation id carries
`;messageid=<root>`: the part before it is the channel (the audience of the answer), the
root is the thread. A message's id is `<conversation id>/<activity id>`: Teams redelivers
the same activity after ~15 s, and the inbox refuses the second copy.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from core.messages import ConversationRef, InboundMessage, Sender

CHANNEL = "teams"
THREAD_MARK = ";messageid="
EMPTY_MENTION = "Hello!"
_AT = re.compile(r"<at[^>]*>(.*?)</at>", re.IGNORECASE | re.DOTALL)
_TAG = re.compile(r"<[^>]+>")
_SPACES = re.compile(r"[ \t]+")


def tenant_of(activity: Mapping[str, Any]) -> str:
    conversation = activity.get("conversation") or {}
    tenant = (activity.get("channelData") or {}).get("tenant") or {}
    return str(conversation.get("tenantId") or tenant.get("id") or "unknown")


def conversation_type(activity: Mapping[str, Any]) -> str:
    return str((activity.get("conversation") or {}).get("conversationType") or "personal")


def thread_ref(tenant: str, conversation_id: str) -> ConversationRef:
    channel, mark, root = conversation_id.partition(THREAD_MARK)
    return ConversationRef(
        channel=CHANNEL, tenant=tenant, conversation=channel, thread=root if mark else None
    )


def sender_id(tenant: str, account: Mapping[str, Any]) -> str:
    """`teams:<tenant>:<aadObjectId>`: the Azure AD object id is the same in every chat
    (the `29:…` id is not)."""
    return f"{CHANNEL}:{tenant}:{account.get('aadObjectId') or account.get('id')}"


def message_id(activity: Mapping[str, Any]) -> str:
    return f"{activity['conversation']['id']}/{activity['id']}"


def mentions_bot(activity: Mapping[str, Any]) -> bool:
    return _bot_mention(activity) is not None


def _bot_mention(activity: Mapping[str, Any]) -> Mapping[str, Any] | None:
    bot = (activity.get("recipient") or {}).get("id")
    for entity in activity.get("entities") or ():
        if entity.get("type") == "mention" and (entity.get("mentioned") or {}).get("id") == bot:
            return dict(entity)
    return None


def clean_text(activity: Mapping[str, Any]) -> str:
    """The text without the bot's own mention; other people's mentions keep their names.

    Only the bot's mention entity is removed — botbuilder's helper also deletes the bare
    display name wherever else it appears, mangling a question that names the bot.
    """
    text = str(activity.get("text") or "")
    mention = _bot_mention(activity)
    if mention and mention.get("text"):
        text = text.replace(str(mention["text"]), " ", 1)
    text = _AT.sub(lambda m: m.group(1), text)
    text = html.unescape(_TAG.sub("", text)).replace("\xa0", " ")
    return _SPACES.sub(" ", text).strip()


def sent_at(activity: Mapping[str, Any]) -> datetime:
    raw = activity.get("timestamp")
    if isinstance(raw, str):
        try:
            return datetime.fromisoformat(raw.replace("Z", "+00:00"))
        except ValueError:
            pass
    return datetime.now(UTC)


def to_inbound(
    activity: Mapping[str, Any], *, sender: Sender, reference: Mapping[str, Any],
    text: str | None = None,
) -> InboundMessage:
    """`reference` is the conversation reference the worker answers through, kept with
    the inbox item so an answer survives a restart. `text`: the message's text when the
    caller has read it already (a command rewritten into the core's grammar)."""
    tenant = tenant_of(activity)
    kind = conversation_type(activity)
    return InboundMessage(
        id=message_id(activity),
        conversation=thread_ref(tenant, activity["conversation"]["id"]),
        sender=sender,
        text=(clean_text(activity) if text is None else text) or EMPTY_MENTION,
        sent_at=sent_at(activity),
        is_direct=kind == "personal",
        channel_data={
            "reference": dict(reference),
            "conversation_type": kind,
            "activity_id": activity["id"],
        },
    )
