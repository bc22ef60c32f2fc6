"""Support tickets: the values, their limits and parsing, and the store port.

A ticket belongs to its requester, the verified sender who opened it. Only the requester
and the agents (`SWITCHBOARD_TICKET_AGENTS`: ids, emails or group names) may see or change
it; to anyone else it does not exist ("not found", never "forbidden", so numbers reveal
nothing). Numbers are `TCK-` + (1000 + the row id): unique however many processes create
tickets at once, because the database assigns the id.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol, get_args

from core.messages import ConversationRef
from core.text.storable import storable

Priority = Literal["low", "medium", "high", "urgent"]
TicketStatus = Literal["open", "in_progress", "resolved", "closed"]
PRIORITIES: tuple[Priority, ...] = get_args(Priority)
STATUSES: tuple[TicketStatus, ...] = get_args(TicketStatus)

NUMBER_PREFIX = "TCK-"
NUMBER_OFFSET = 1000
TITLE_MAX = 120
DESCRIPTION_MAX = 4000
COMMENT_MAX = 2000
_NUMBER = re.compile(r"(?:tck-?)?#?(\d{1,9})", re.IGNORECASE)


class TicketError(Exception):
    """A request about tickets that cannot be done; `str()` is a one-line answer for the
    person (or the model), and nothing was changed."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Comment:
    author: str
    author_name: str | None
    text: str
    created_at: datetime


@dataclass(frozen=True, kw_only=True, slots=True)
class Ticket:
    id: int
    title: str
    description: str
    priority: Priority
    status: TicketStatus
    requester: str
    requester_name: str | None
    origin: ConversationRef | None
    origin_link: str | None
    assignee: str | None
    created_at: datetime
    updated_at: datetime
    comments: tuple[Comment, ...] = ()

    @property
    def number(self) -> str:
        return f"{NUMBER_PREFIX}{NUMBER_OFFSET + self.id}"


@dataclass(frozen=True, kw_only=True, slots=True)
class NewTicket:
    title: str
    description: str
    priority: Priority
    requester: str
    requester_name: str | None
    origin: ConversationRef | None
    origin_link: str | None


@dataclass(frozen=True, kw_only=True, slots=True)
class TicketChange:
    """What happened to a ticket, for the requester's thread and the outbound webhook."""

    kind: Literal["created", "status", "commented", "assigned"]
    ticket: Ticket
    actor: str
    previous_status: TicketStatus | None = None


class TicketStore(Protocol):
    async def create(self, draft: NewTicket) -> Ticket: ...

    async def get(self, ticket_id: int) -> Ticket | None: ...

    async def list(
        self, *, requester: str | None, statuses: Sequence[TicketStatus], limit: int
    ) -> list[Ticket]:
        """Newest first; `requester` None: everyone's (for agents)."""
        ...

    async def update(
        self, ticket_id: int, *, status: TicketStatus | None = None,
        assignee: str | None = None, clear_assignee: bool = False,
    ) -> Ticket: ...

    async def add_comment(
        self, ticket_id: int, *, author: str, author_name: str | None, text: str
    ) -> Ticket: ...


Listener = Callable[[TicketChange], Awaitable[None]]


def ticket_json(ticket: Ticket) -> dict[str, Any]:
    """The ticket as JSON, the one shape the REST API and the webhook both send."""
    origin = ticket.origin
    return {
        "number": ticket.number,
        "title": ticket.title,
        "description": ticket.description,
        "priority": ticket.priority,
        "status": ticket.status,
        "requester": ticket.requester,
        "requester_name": ticket.requester_name,
        "assignee": ticket.assignee,
        "origin": None if origin is None else {
            "channel": origin.channel,
            "tenant": origin.tenant,
            "conversation": origin.conversation,
            "thread": origin.thread,
        },
        "origin_link": ticket.origin_link,
        "created_at": ticket.created_at.isoformat(),
        "updated_at": ticket.updated_at.isoformat(),
        "comments_count": len(ticket.comments),
        "comments": [
            {"author": c.author, "author_name": c.author_name, "text": c.text,
             "created_at": c.created_at.isoformat()}
            for c in ticket.comments
        ],
    }


def parse_number(text: str) -> int:
    """`TCK-1042`, `tck1042`, `#1042` or `1042` → the row id; TicketError otherwise."""
    match = _NUMBER.fullmatch(text.strip())
    if match is None or int(match.group(1)) <= NUMBER_OFFSET:
        raise TicketError(f"{text.strip() or 'That'} is not a ticket number (like TCK-1042).")
    return int(match.group(1)) - NUMBER_OFFSET


def clean_title(title: str) -> str:
    title = " ".join(storable(title).split())
    if not title:
        raise TicketError("A ticket needs a title.")
    if len(title) > TITLE_MAX:
        raise TicketError(f"The title is {len(title)} characters; keep it under {TITLE_MAX}.")
    return title


def check_priority(priority: str) -> Priority:
    value = priority.strip().lower()
    for known in PRIORITIES:
        if value == known:
            return known
    raise TicketError(f"Priority must be one of {', '.join(PRIORITIES)}, not {priority!r}.")
