"""`/ticket …`: one grammar for every channel. Each command answers with one short
Markdown message; a mistake gets a one-line answer and changes nothing.

    /ticket new <title>        /ticket list          /ticket show N
    /ticket comment N <text>   /ticket close N       /ticket help
"""

from __future__ import annotations

from core.messages import ConversationRef, Sender
from core.tickets.model import Ticket, TicketError
from core.tickets.service import TicketService

COMMAND = "/ticket"
HELP = (
    "**Tickets**\n"
    "- `/ticket new <title>` — open a ticket\n"
    "- `/ticket list` — your open tickets\n"
    "- `/ticket show TCK-1042` — a ticket and its comments\n"
    "- `/ticket comment TCK-1042 <text>` — add a comment\n"
    "- `/ticket close TCK-1042` — close it\n"
    "You can also just ask me in plain words to open or follow a ticket."
)


def is_ticket_command(text: str) -> bool:
    word = text.strip().split(maxsplit=1)[0].lower() if text.strip() else ""
    return word == COMMAND


async def run_ticket_command(
    service: TicketService, actor: Sender, text: str, *,
    origin: ConversationRef | None = None, origin_link: str | None = None,
) -> str:
    """`text` with or without the leading `/ticket`."""
    words = text.strip()
    if words.lower().startswith(COMMAND):
        words = words[len(COMMAND):].strip()
    verb, _, rest = words.partition(" ")
    rest = rest.strip()
    try:
        match verb.lower():
            case "" | "help":
                return HELP
            case "new" | "create" | "open":
                ticket = await service.create(actor, title=rest, origin=origin,
                                              origin_link=origin_link)
                return (f"Opened **{ticket.number}**: {ticket.title}. "
                        "I'll tell you here when its status changes.")
            case "list":
                return list_text(await service.list(actor))
            case "show":
                return ticket_text(await service.show(actor, _number(rest)))
            case "comment":
                number, _, comment = rest.partition(" ")
                ticket = await service.comment(actor, _number(number), comment)
                return f"Added your comment to **{ticket.number}**."
            case "close":
                ticket = await service.close(actor, _number(rest))
                return f"Closed **{ticket.number}**: {ticket.title}."
            case _:
                return f"I don't know `/ticket {verb}`. Try `/ticket help`."
    except TicketError as e:
        return str(e)


def _number(text: str) -> str:
    if not text.strip():
        raise TicketError("Which ticket? Give its number, like TCK-1042.")
    return text.strip().split()[0]


def status_label(ticket: Ticket) -> str:
    return ticket.status.replace("_", " ")


def list_text(tickets: list[Ticket]) -> str:
    if not tickets:
        return "You have no open tickets. `/ticket new <title>` opens one."
    lines = [f"- **{t.number}** · {status_label(t)} · {t.priority} · {t.title}" for t in tickets]
    return "**Your tickets**\n" + "\n".join(lines)


def ticket_text(ticket: Ticket) -> str:
    lines = [
        f"**{ticket.number}** · {status_label(ticket)} · {ticket.priority}",
        f"**{ticket.title}**",
    ]
    if ticket.description:
        lines.append(ticket.description)
    lines.append(f"Opened by {ticket.requester_name or ticket.requester} on "
                 f"{ticket.created_at:%Y-%m-%d %H:%M} UTC")
    if ticket.assignee:
        lines.append(f"Assigned to {ticket.assignee}")
    for comment in ticket.comments:
        lines.append(f"- {comment.author_name or comment.author}: {comment.text}")
    return "\n\n".join(lines[:3]) + "\n\n" + "\n".join(lines[3:])
