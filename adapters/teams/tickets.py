"""Tickets in Teams: `ticket …` typed to the bot (the same grammar as `/ticket` elsewhere,
answered through the inbox like any message) and an Adaptive Card form, whose submit comes
back to the bot as a message carrying the card's values; it is answered with a card, or
the form again with errors by the fields."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from core.messages import ConversationRef, Sender
from core.tickets.commands import status_label
from core.tickets.model import (
    DESCRIPTION_MAX,
    PRIORITIES,
    TITLE_MAX,
    Ticket,
    TicketError,
    check_priority,
    clean_title,
)
from core.tickets.service import TicketService

FORM_ACTION = "switchboard.ticket.create"
ADAPTIVE_CARD = "application/vnd.microsoft.card.adaptive"
_WORDS = ("ticket", "/ticket")

# Sends an activity into the conversation being answered.
Send = Callable[[dict[str, Any]], Awaitable[object]]


def is_ticket_text(text: str) -> bool:
    first = text.strip().split(maxsplit=1)[0].lower() if text.strip() else ""
    return first in _WORDS


def is_form_submit(value: object) -> bool:
    return isinstance(value, Mapping) and value.get("action") == FORM_ACTION


def wants_form(text: str) -> bool:
    """`ticket` alone (or `ticket new` without a title) asks for the form card."""
    rest = text.strip().split()[1:]
    return not rest or (rest[0].lower() in ("new", "create", "open") and len(rest) == 1)


def as_command(text: str) -> str:
    """`ticket list` (how Teams shows the bot's commands) in the core's grammar."""
    return "/ticket " + " ".join(text.strip().split()[1:])


async def send_form(send: Send) -> None:
    await send(card_message(form_card()))


async def answer_submit(
    send: Send, service: TicketService, sender: Sender, value: Mapping[str, Any],
    origin: ConversationRef,
) -> None:
    values = {key: str(value.get(key) or "") for key in ("title", "description", "priority")}
    errors = validate(values)
    if errors:
        await send(card_message(form_card(values=values, errors=errors)))
        return
    try:
        ticket = await service.create(
            sender, title=values["title"], description=values["description"],
            priority=values["priority"] or "medium", origin=origin,
        )
    except TicketError as e:
        await send(card_message(form_card(values=values, errors={"title": str(e)})))
        return
    await send(card_message(ticket_card(ticket)))


def validate(values: Mapping[str, str]) -> dict[str, str]:
    """Field → what is wrong with it (empty when the form is fine)."""
    errors = {}
    try:
        clean_title(values.get("title", ""))
    except TicketError as e:
        errors["title"] = str(e)
    if len(values.get("description", "").strip()) > DESCRIPTION_MAX:
        errors["description"] = f"Keep the description under {DESCRIPTION_MAX} characters."
    try:
        check_priority(values.get("priority") or "medium")
    except TicketError as e:
        errors["priority"] = str(e)
    return errors


def form_card(
    *, values: Mapping[str, str] | None = None, errors: Mapping[str, str] | None = None
) -> dict[str, Any]:
    values, errors = values or {}, errors or {}

    def error(field: str) -> list[dict[str, Any]]:
        if field not in errors:
            return []
        return [{"type": "TextBlock", "text": errors[field], "color": "attention",
                 "wrap": True, "size": "small", "spacing": "none"}]

    return {
        "type": "AdaptiveCard",
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "version": "1.5",
        "body": [
            {"type": "TextBlock", "text": "Open a support ticket", "weight": "bolder",
             "size": "medium"},
            {"type": "Input.Text", "id": "title", "label": "Title", "isRequired": True,
             "maxLength": TITLE_MAX, "value": values.get("title", ""),
             "errorMessage": "A ticket needs a title."},
            *error("title"),
            {"type": "Input.Text", "id": "description", "label": "What happened?",
             "isMultiline": True, "maxLength": DESCRIPTION_MAX,
             "value": values.get("description", "")},
            *error("description"),
            {"type": "Input.ChoiceSet", "id": "priority", "label": "Priority",
             "value": values.get("priority") or "medium",
             "choices": [{"title": p.title(), "value": p} for p in PRIORITIES]},
            *error("priority"),
        ],
        "actions": [{"type": "Action.Submit", "title": "Open ticket",
                     "data": {"action": FORM_ACTION}}],
    }


def ticket_card(ticket: Ticket) -> dict[str, Any]:
    facts = [
        {"title": "Status", "value": status_label(ticket)},
        {"title": "Priority", "value": ticket.priority},
        {"title": "Requester", "value": ticket.requester_name or ticket.requester},
    ]
    body: list[dict[str, Any]] = [
        {"type": "TextBlock", "text": f"{ticket.number}: {ticket.title}", "weight": "bolder",
         "wrap": True},
        {"type": "FactSet", "facts": facts},
    ]
    if ticket.description:
        body.append({"type": "TextBlock", "text": ticket.description, "wrap": True})
    body.append({"type": "TextBlock", "wrap": True, "isSubtle": True,
                 "text": "I'll tell you here when its status changes."})
    return {"type": "AdaptiveCard", "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
            "version": "1.5", "body": body}


def card_message(card: dict[str, Any]) -> dict[str, Any]:
    """A message carrying one Adaptive Card, as botbuilder's `MessageFactory.attachment`
    sent it within a turn."""
    return {
        "type": "message",
        "attachmentLayout": "list",
        "inputHint": "acceptingInput",
        "attachments": [{"contentType": ADAPTIVE_CARD, "content": card}],
    }
