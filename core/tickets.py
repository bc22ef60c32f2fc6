"""Support tickets: the values, the rules of who may see and change them, and the one
service every path (commands, the model's tools, the REST API, forms) goes through.

A ticket belongs to its requester, the verified sender who opened it. Only the requester
and the agents (`SWITCHBOARD_TICKET_AGENTS`: ids, emails or group names) may see or change
it; to anyone else it does not exist ("not found", never "forbidden", so numbers reveal
nothing). Numbers are `TCK-` + (1000 + the row id): unique however many processes create
tickets at once, because the database assigns the id.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol, get_args

from core.messages import ConversationRef, Sender

Priority = Literal["low", "medium", "high", "urgent"]
TicketStatus = Literal["open", "in_progress", "resolved", "closed"]
PRIORITIES: tuple[Priority, ...] = get_args(Priority)
STATUSES: tuple[TicketStatus, ...] = get_args(TicketStatus)

NUMBER_PREFIX = "TCK-"
NUMBER_OFFSET = 1000
TITLE_MAX = 120
DESCRIPTION_MAX = 4000
COMMENT_MAX = 2000
log = logging.getLogger(__name__)
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
    title = " ".join(title.split())
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


class TicketService:
    def __init__(
        self, store: TicketStore, *, agents: frozenset[str] = frozenset(),
        listeners: Sequence[Listener] = (),
    ) -> None:
        self._store = store
        self._agents = agents
        self._listeners = list(listeners)

    def subscribe(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def is_agent(self, actor: Sender) -> bool:
        names = {actor.id, *actor.groups} | ({actor.email} if actor.email else set())
        return bool(names & self._agents)

    async def create(
        self, actor: Sender, *, title: str, description: str = "", priority: str = "medium",
        origin: ConversationRef | None = None, origin_link: str | None = None,
    ) -> Ticket:
        description = description.strip()
        if len(description) > DESCRIPTION_MAX:
            raise TicketError(f"The description is too long; keep it under {DESCRIPTION_MAX}.")
        ticket = await self._store.create(NewTicket(
            title=clean_title(title), description=description,
            priority=check_priority(priority), requester=actor.id, requester_name=actor.name,
            origin=origin, origin_link=origin_link,
        ))
        await self._tell(TicketChange(kind="created", ticket=ticket, actor=actor.id))
        return ticket

    async def show(self, actor: Sender, number: str | int) -> Ticket:
        ticket_id = number if isinstance(number, int) else parse_number(number)
        ticket = await self._store.get(ticket_id)
        if ticket is None or not (ticket.requester == actor.id or self.is_agent(actor)):
            shown = f"{NUMBER_PREFIX}{NUMBER_OFFSET + ticket_id}"
            raise TicketError(f"There is no ticket {shown} of yours.")
        return ticket

    async def list(self, actor: Sender, *, everyone: bool = False,
                   include_closed: bool = False, limit: int = 20) -> list[Ticket]:
        statuses = STATUSES if include_closed else ("open", "in_progress", "resolved")
        requester = None if everyone and self.is_agent(actor) else actor.id
        return await self._store.list(requester=requester, statuses=statuses, limit=limit)

    async def comment(self, actor: Sender, number: str | int, text: str) -> Ticket:
        ticket = await self.show(actor, number)
        text = text.strip()
        if not text:
            raise TicketError("The comment is empty.")
        if len(text) > COMMENT_MAX:
            raise TicketError(f"The comment is too long; keep it under {COMMENT_MAX}.")
        updated = await self._store.add_comment(
            ticket.id, author=actor.id, author_name=actor.name, text=text
        )
        await self._tell(TicketChange(kind="commented", ticket=updated, actor=actor.id))
        return updated

    async def set_status(self, actor: Sender, number: str | int, status: str) -> Ticket:
        """The requester may close or reopen their ticket; agents may set any status."""
        ticket = await self.show(actor, number)
        value = status.strip().lower().replace(" ", "_")
        if value not in STATUSES:
            raise TicketError(f"Status must be one of {', '.join(STATUSES)}, not {status!r}.")
        if not self.is_agent(actor) and value not in ("closed", "open"):
            raise TicketError("Only the support team can change that; you can close it.")
        if ticket.status == value:
            raise TicketError(f"{ticket.number} is already {value.replace('_', ' ')}.")
        updated = await self._store.update(ticket.id, status=value)
        await self._tell(TicketChange(kind="status", ticket=updated, actor=actor.id,
                                      previous_status=ticket.status))
        return updated

    async def close(self, actor: Sender, number: str | int) -> Ticket:
        return await self.set_status(actor, number, "closed")

    async def assign(self, actor: Sender, number: str | int, assignee: str | None) -> Ticket:
        if not self.is_agent(actor):
            raise TicketError("Only the support team can assign tickets.")
        ticket = await self.show(actor, number)
        updated = await self._store.update(
            ticket.id, assignee=assignee, clear_assignee=assignee is None
        )
        await self._tell(TicketChange(kind="assigned", ticket=updated, actor=actor.id))
        return updated

    async def _tell(self, change: TicketChange) -> None:
        """Listeners hand work off (a thread message, a webhook); the change is made
        whatever they do, so a failure is logged, never raised to the person."""
        for listener in self._listeners:
            try:
                await listener(change)
            except Exception:
                log.exception("a ticket listener failed on %s (%s)", change.ticket.number,
                              change.kind)
