"""Telling the requester, in the thread a ticket came from, that its status changed.

Channel-agnostic: the notice is one line of CommonMark handed to a `ThreadNotifier`, with
the requester as the person to mention when the thread's channel is theirs. Tickets opened
without a thread (web, terminal, REST) have nowhere to push to: their status is visible
when the person looks. A change the requester made themselves is not announced — they
already got the command's answer.
"""

from __future__ import annotations

import logging
import re

from core.messages import Sender
from core.ports import ThreadNotifier
from core.tickets.model import Ticket, TicketChange, TicketStatus

log = logging.getLogger(__name__)

# CommonMark lets any ASCII punctuation be backslash-escaped; these would change a title.
_MARKUP = re.compile(r"([\\`*_\[\]<>~#|])")


def status_notice(ticket: Ticket, previous: TicketStatus | None) -> str:
    """`TCK-1042 *Printer on floor 2* is now **resolved**.`"""
    title = _MARKUP.sub(r"\\\1", ticket.title)
    status = ticket.status.replace("_", " ")
    if ticket.status == "open" and previous in ("resolved", "closed"):
        return f"{ticket.number} *{title}* is **open** again."
    return f"{ticket.number} *{title}* is now **{status}**."


class TicketNotices:
    """A `TicketService` listener: status changes of threaded tickets → the thread."""

    def __init__(self, notifier: ThreadNotifier) -> None:
        self._notifier = notifier

    async def __call__(self, change: TicketChange) -> None:
        ticket = change.ticket
        if change.kind != "status" or ticket.origin is None:
            return
        if change.actor == ticket.requester:
            return
        where = ticket.origin
        # Only someone of the thread's own channel can be mentioned there.
        mention = (
            Sender(id=ticket.requester, name=ticket.requester_name)
            if ticket.requester.startswith(f"{where.channel}:")
            else None
        )
        log.debug("telling %s thread about %s (%s)", where.channel, ticket.number, ticket.status)
        await self._notifier.notify(
            where, status_notice(ticket, change.previous_status), mention=mention
        )
