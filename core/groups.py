"""Groups: named sets of people, kept in SQL (`switchboard groups`).

A member is a verified email (`ada@example.com`, matched without regard to case) or a
channel-scoped id (`slack:T1:U1`, `teams:<tenant>:<aadObjectId>`), so one group can cover
a person in Slack and in Teams. Access lists and the ticket agent role name groups; a
sender's groups are looked up when their turn begins, whatever channel they wrote in.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

NAME_MAX = 128
MEMBER_MAX = 256
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+-]*")
_EMAIL = re.compile(r"[^@\s:]+@[^@\s:]+\.[^@\s:]+")
_SCOPED = re.compile(r"[a-z][a-z0-9_-]*:[^:\s]+:\S+")


class GroupError(ValueError):
    """A group name or member that cannot be stored; the message says what is expected."""


@dataclass(frozen=True, kw_only=True, slots=True)
class GroupSummary:
    name: str
    members: int


def group_name(raw: str) -> str:
    """A group's name as access lists write it (`allow_groups: [finance]`)."""
    name = raw.strip()
    if len(name) > NAME_MAX or not _NAME.fullmatch(name):
        raise GroupError(
            f"{raw!r} is not a group name: letters, digits and . _ @ + -, up to {NAME_MAX}"
        )
    return name


def member_name(raw: str) -> str:
    """An email (kept lower-case, as senders' emails are matched) or a channel-scoped id."""
    member = raw.strip()
    if len(member) <= MEMBER_MAX:
        if _EMAIL.fullmatch(member):
            return member.lower()
        if _SCOPED.fullmatch(member):
            return member
    raise GroupError(
        f"{raw!r} is not a member: an email (ada@example.com) or a channel-scoped id "
        "(slack:T123:U456, teams:<tenant>:<user>)"
    )


def member_keys(sender_id: str, email: str | None) -> tuple[str, ...]:
    """What a sender may be listed as in a group."""
    return (sender_id, email.strip().lower()) if email else (sender_id,)
