"""The fields of an activity's JSON the bot reads, with their types, checked once the
request is authenticated: a field of the wrong type is refused here (400, one log line)
rather than failing somewhere in the bot with a traceback.

The bot reads the JSON as sent (`raw_activity`), not botbuilder's model, which would have
turned a number into a string for it; so these are checked as strictly as JSON allows.
Fields the bot does not read are not checked; `value` is free-form, read by whoever
handles that invoke or card.
"""

from __future__ import annotations

from typing import Any, Required

from pydantic import TypeAdapter, ValidationError
from typing_extensions import TypedDict

from core.json_input import Identifier, problems


class _Account(TypedDict, total=False):
    id: Identifier | None
    name: str | None
    aadObjectId: Identifier | None
    role: str | None


class _Conversation(TypedDict, total=False):
    id: Required[Identifier]
    conversationType: str | None
    tenantId: Identifier | None


class _Entity(TypedDict, total=False):
    type: str | None
    mentioned: _Account | None
    text: str | None


class _Tenant(TypedDict, total=False):
    id: Identifier | None


class _ChannelData(TypedDict, total=False):
    tenant: _Tenant | None


class _Attachment(TypedDict, total=False):
    contentType: str | None
    contentUrl: str | None
    name: str | None


# Functional: `from` is a keyword.
_Activity = TypedDict("_Activity", {
    "type": Required[str],
    "id": Identifier | None,
    "name": str | None,
    "channelId": str | None,
    "serviceUrl": str | None,
    "from": _Account | None,
    "recipient": _Account | None,
    "conversation": _Conversation | None,
    "text": str | None,
    "replyToId": Identifier | None,
    "deliveryMode": str | None,
    "entities": list[_Entity] | None,
    "attachments": list[_Attachment] | None,
    "membersAdded": list[_Account] | None,
    "channelData": _ChannelData | None,
    "value": Any,
}, total=False)

_ACTIVITY = TypeAdapter(_Activity)
# What a message or an invoke must carry for the bot to know who said it, and where.
_ADDRESSED = ("id", "from", "conversation")


def unusable(activity: dict[str, Any]) -> list[str]:
    """What is wrong with the fields the bot reads (empty when nothing is)."""
    try:
        _ACTIVITY.validate_python(activity, strict=True)
    except ValidationError as e:
        return problems(e)
    if activity["type"] in ("message", "invoke"):
        return [f"{name}: Field required" for name in _ADDRESSED if activity.get(name) is None]
    return []
