"""The model's ticket tools. Each acts as the verified sender of the message (the
`ToolContext`), never as anyone the model names: a person can only see and change their
own tickets, however the request is worded."""

from __future__ import annotations

from typing import Literal

from core.errors import ToolError
from core.tickets.commands import list_text, ticket_text
from core.tickets.model import TicketError
from core.tickets.service import TicketService
from core.tools.registry import ToolContext, tool


def _service(ctx: ToolContext) -> TicketService:
    if ctx.services.tickets is None:
        raise ToolError("Tickets are not available in this deployment.")
    return ctx.services.tickets


@tool(title="Opening a ticket", cancellable=False)
async def create_ticket(
    ctx: ToolContext, title: str, description: str,
    priority: Literal["low", "medium", "high", "urgent"] = "medium",
) -> str:
    """Open a support ticket for the person you are talking to. Only call this once they
    have told you what is wrong (a short title and a description); if either is missing,
    ask them first. Tell them the ticket number you get back.

    Args:
        title: a short summary, under 120 characters.
        description: what happened, what they tried, what they need.
        priority: how urgent it is for them.
    """
    service = _service(ctx)
    try:
        ticket = await service.create(
            ctx.sender, title=title, description=description, priority=priority,
            origin=ctx.conversation,
        )
    except TicketError as e:
        raise ToolError(str(e)) from e
    return f"Opened {ticket.number}: {ticket.title} (priority {ticket.priority})."


@tool(title="Looking up your tickets")
async def list_my_tickets(ctx: ToolContext) -> str:
    """List the open tickets of the person you are talking to."""
    return list_text(await _service(ctx).list(ctx.sender))


@tool(title="Reading a ticket")
async def show_ticket(ctx: ToolContext, number: str) -> str:
    """Show one of the person's tickets with its status and comments.

    Args:
        number: the ticket number, like TCK-1042.
    """
    service = _service(ctx)
    try:
        return ticket_text(await service.show(ctx.sender, number))
    except TicketError as e:
        raise ToolError(str(e)) from e


@tool(title="Commenting on a ticket", cancellable=False)
async def comment_on_ticket(ctx: ToolContext, number: str, text: str) -> str:
    """Add the person's comment to one of their tickets.

    Args:
        number: the ticket number, like TCK-1042.
        text: the comment, in their words.
    """
    service = _service(ctx)
    try:
        ticket = await service.comment(ctx.sender, number, text)
    except TicketError as e:
        raise ToolError(str(e)) from e
    return f"Added the comment to {ticket.number}."


@tool(title="Closing a ticket", cancellable=False)
async def close_ticket(ctx: ToolContext, number: str) -> str:
    """Close one of the person's tickets, when they say it is solved or no longer needed.

    Args:
        number: the ticket number, like TCK-1042.
    """
    service = _service(ctx)
    try:
        ticket = await service.close(ctx.sender, number)
    except TicketError as e:
        raise ToolError(str(e)) from e
    return f"Closed {ticket.number}."


TICKET_TOOLS = (create_ticket, list_my_tickets, show_ticket, comment_on_ticket, close_ticket)
