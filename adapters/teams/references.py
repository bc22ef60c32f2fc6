"""Conversation references as plain JSON, in the shapes botbuilder gave them.

`reference_of` builds, from an incoming activity, what `TurnContext.
get_conversation_reference(activity).serialize()` produced: the shape already stored with
inbox items and in `conversation_references`, so old rows and new ones read alike.
`addressed` fills in an outgoing activity from a stored reference as
`TurnContext.apply_conversation_reference` did, with the fields in the order botbuilder's
`Activity` serialized them. Both expect the JSON types of botbuilder's schema (see
`shape.conforms`); tests/adapters/teams/test_references.py holds them to botbuilder.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# The fields of botbuilder's models, in their serialization order. Fields not named here
# were dropped by the models: a conversation's `tenantId`, say (the model spells it
# `tenantID`), never reached a stored reference.
ACCOUNT_FIELDS = ("id", "name", "aadObjectId", "role", "properties")
CONVERSATION_FIELDS = (
    "isGroup", "conversationType", "id", "name", "aadObjectId", "role", "tenantID", "properties",
)
ACTIVITY_FIELDS = (
    "type", "id", "timestamp", "localTimestamp", "localTimezone", "serviceUrl", "channelId",
    "from", "conversation", "recipient", "textFormat", "attachmentLayout", "membersAdded",
    "membersRemoved", "reactionsAdded", "reactionsRemoved", "topicName", "historyDisclosed",
    "locale", "text", "speak", "inputHint", "summary", "suggestedActions", "attachments",
    "entities", "channelData", "action", "replyToId", "label", "valueType", "value", "name",
    "relatesTo", "code", "expiration", "importance", "deliveryMode", "listenFor",
    "textHighlights", "semanticAction", "callerId",
)
# botbuilder leaves the activity id out of references to these (it names no message that
# a reply could thread under).
_NO_ACTIVITY_ID_TYPES = frozenset({"conversationUpdate"})
_NO_ACTIVITY_ID_CHANNELS = frozenset({"directline", "webchat"})


def reference_of(activity: Mapping[str, Any]) -> dict[str, Any]:
    """The conversation reference of an incoming activity."""
    activity_id = None
    if (
        activity.get("type") not in _NO_ACTIVITY_ID_TYPES
        and activity.get("channelId") not in _NO_ACTIVITY_ID_CHANNELS
    ):
        activity_id = activity.get("id")
    reference = {
        "activityId": activity_id,
        "user": _fields(activity.get("from"), ACCOUNT_FIELDS),
        "bot": _fields(activity.get("recipient"), ACCOUNT_FIELDS),
        "conversation": _fields(activity.get("conversation"), CONVERSATION_FIELDS),
        "channelId": activity.get("channelId"),
        "locale": activity.get("locale"),
        "serviceUrl": activity.get("serviceUrl"),
    }
    return {key: value for key, value in reference.items() if value is not None}


def addressed(activity: Mapping[str, Any], reference: Mapping[str, Any]) -> dict[str, Any]:
    """`activity` from the bot into the conversation of `reference`: a reply to the
    activity the reference names, if it names one."""
    fields = {
        **activity,
        "channelId": reference.get("channelId"),
        "locale": reference.get("locale"),
        "serviceUrl": reference.get("serviceUrl"),
        "conversation": reference.get("conversation"),
        "from": reference.get("bot"),
        "recipient": reference.get("user"),
    }
    if reference.get("activityId"):
        fields["replyToId"] = reference["activityId"]
    return {key: fields[key] for key in ACTIVITY_FIELDS if fields.get(key) is not None}


def _fields(account: object, names: tuple[str, ...]) -> dict[str, Any] | None:
    if not isinstance(account, Mapping):
        return None
    return {name: account[name] for name in names if account.get(name) is not None}
