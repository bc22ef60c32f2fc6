"""The JSON a webhook receives: what happened, and the ticket as it is after the change.

    {"event": "ticket.status_changed", "occurred_at": "2025-05-01T09:30:00+00:00",
     "actor": "slack:T1:U9", "previous_status": "open",
     "ticket": {"number": "TCK-1042", "title": …, "description": …, "priority": "high",
                "status": "resolved", "requester": "slack:T1:U1", "requester_name": …,
                "assignee": null, "origin": {"channel", "tenant", "conversation", "thread"}
                or null, "origin_link": …, "created_at": …, "updated_at": …,
                "comments_count": 2}}

Every event carries the whole ticket, so the latest delivery alone is enough to
bring a receiver up to date.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any, Literal

from core.tickets.model import TicketChange, ticket_json

Event = Literal["ticket.created", "ticket.status_changed", "ticket.commented", "ticket.assigned"]

EVENTS: dict[str, Event] = {
    "created": "ticket.created",
    "status": "ticket.status_changed",
    "commented": "ticket.commented",
    "assigned": "ticket.assigned",
}


def event_name(change: TicketChange) -> Event:
    return EVENTS[change.kind]


def payload(change: TicketChange, occurred_at: datetime) -> dict[str, Any]:
    return {
        "event": event_name(change),
        "occurred_at": _iso(occurred_at),
        "actor": change.actor,
        "previous_status": change.previous_status,
        "ticket": ticket_json(change.ticket),
    }


def encode(data: dict[str, Any]) -> bytes:
    """Compact UTF-8 JSON: these exact bytes are signed and sent."""
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _iso(when: datetime) -> str:
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).astimezone(UTC).isoformat()
