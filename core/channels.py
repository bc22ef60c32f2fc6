"""A chat channel's recent messages, as the `read_channel` tool reads them, and which
channel a person is viewing beside the assistant, as their profile remembers it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from core.messages import ConversationRef
from core.profiles import Profile

# The profile preference holding the Slack channel a person has open beside the
# assistant (None once they look at something else); the Slack channel sets it.
SLACK_VIEWING = "slack_viewing"


@dataclass(frozen=True, kw_only=True, slots=True)
class ChannelMessage:
    author: str  # a display name, or the platform's id when the name is unknown
    text: str  # plain text, people's names spelled out
    sent_at: datetime


@dataclass(frozen=True, kw_only=True, slots=True)
class ChannelExcerpt:
    """A channel's most recent messages, oldest first."""

    channel: str
    name: str | None
    messages: tuple[ChannelMessage, ...]


def viewing(profile: Profile | None) -> str | None:
    """The Slack channel the person has open beside the assistant, if Slack told us."""
    found = profile.preferences.get(SLACK_VIEWING) if profile is not None else None
    return found if isinstance(found, str) and found else None


def in_slack_channel(where: ConversationRef) -> str | None:
    """The Slack channel a conversation is held in; None for a direct message (Slack's
    DM ids start with D), where "this channel" is the one the person is viewing."""
    if where.channel != "slack" or where.conversation.startswith("D"):
        return None
    return where.conversation
