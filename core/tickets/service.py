"""The one service every ticket path (commands, the model's tools, the REST API, forms)
goes through, and the rules of who may see and change a ticket.

A ticket belongs to its requester, the verified sender who opened it. Only the requester
and the agents (`SWITCHBOARD_TICKET_AGENTS`: ids, emails or group names) may see or change
it; to anyone else it does not exist ("not found", never "forbidden", so numbers reveal
nothing). Numbers are `TCK-` + (1000 + the row id): unique however many processes create
tickets at once, because the database assigns the id.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from core.messages import ConversationRef, Sender
from core.text.storable import storable
from core.tickets.model import (
    COMMENT_MAX,
    DESCRIPTION_MAX,
    NUMBER_OFFSET,
    NUMBER_PREFIX,
    STATUSES,
    Listener,
    NewTicket,
    Ticket,
    TicketChange,
    TicketError,
    TicketStore,
    check_priority,
    clean_title,
    parse_number,
)

if TYPE_CHECKING:
    from core.ports import GroupStore

log = logging.getLogger(__name__)


class TicketService:
    def __init__(
        self, store: TicketStore, *, agents: frozenset[str] = frozenset(),
        listeners: Sequence[Listener] = (), groups: GroupStore | None = None,
    ) -> None:
        self._store = store
        self._agents = agents
        self._listeners = list(listeners)
        self._groups = groups

    def subscribe(self, listener: Listener) -> None:
        self._listeners.append(listener)

    async def is_agent(self, actor: Sender) -> bool:
        """By id, email or group: the groups the channel gave (a turn's sender carries those
        kept in SQL already), else those kept in SQL, looked up only when they could
        matter (a ticket command or form reaches here without a turn)."""
        names = {actor.id, *actor.groups} | ({actor.email} if actor.email else set())
        if names & self._agents:
            return True
        if self._groups is None or not self._agents:
            return False
        return bool(await self._groups.groups_of(actor) & self._agents)

    async def create(
        self, actor: Sender, *, title: str, description: str = "", priority: str = "medium",
        origin: ConversationRef | None = None, origin_link: str | None = None,
    ) -> Ticket:
        description = storable(description).strip()
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
        if ticket is None or not (ticket.requester == actor.id or await self.is_agent(actor)):
            shown = f"{NUMBER_PREFIX}{NUMBER_OFFSET + ticket_id}"
            raise TicketError(f"There is no ticket {shown} of yours.")
        return ticket

    async def list(self, actor: Sender, *, everyone: bool = False,
                   include_closed: bool = False, limit: int = 20) -> list[Ticket]:
        statuses = STATUSES if include_closed else ("open", "in_progress", "resolved")
        requester = None if everyone and await self.is_agent(actor) else actor.id
        return await self._store.list(requester=requester, statuses=statuses, limit=limit)

    async def comment(self, actor: Sender, number: str | int, text: str) -> Ticket:
        ticket = await self.show(actor, number)
        text = storable(text).strip()
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
        if not await self.is_agent(actor) and value not in ("closed", "open"):
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
        if not await self.is_agent(actor):
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
