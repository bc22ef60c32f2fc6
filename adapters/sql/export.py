"""What Switchboard keeps about one conversation or one person, as JSON-ready dicts, for
audits and data-subject requests (`switchboard export`). Read in one transaction, so the
parts agree with each other. The shape is documented in the README ("Retention and
export") and versioned by `FORMAT`.

A person's export holds the conversations they own (direct messages, web and terminal
chats: every turn) and, from shared threads (Slack channels, Teams channels), only the
exchanges they started: their message and the turns answering it (`complete: false`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, or_, select

from adapters.sql.rows import PROFILE_FIELDS
from adapters.sql.tables import (
    conversations,
    feedback,
    inbox,
    profiles,
    ticket_comments,
    tickets,
    turns,
)
from adapters.sql.tickets import to_ticket
from core.tickets.model import Comment, ticket_json

FORMAT = "switchboard.export/1"
_PAGE = 1000  # inbox rows read at a time while looking for a person's messages


def export_conversation(conn: Connection, conversation_id: str) -> dict[str, Any] | None:
    row = conn.execute(
        select(conversations).where(conversations.c.id == conversation_id)
    ).one_or_none()
    if row is None:
        return None
    turn_rows = conn.execute(
        select(turns).where(turns.c.conversation_id == row.id).order_by(turns.c.id)
    ).all()
    origin = (tickets.c.origin_channel == row.channel, tickets.c.origin_tenant == row.tenant,
              tickets.c.origin_conversation == row.external_id)
    ticket_rows = [
        t for t in conn.execute(select(tickets).where(*origin).order_by(tickets.c.id))
        if (t.origin_thread or "") == row.thread_id
    ]
    return _document(
        conn, {"kind": "conversation", "id": row.id}, profile=None,
        conversations=[_conversation(row, turn_rows, complete=True)],
        feedback_rows=_feedback_on([t.id for t in turn_rows], conn), ticket_rows=ticket_rows,
    )


def export_user(conn: Connection, user_id: str) -> dict[str, Any]:
    owned = conn.execute(
        select(conversations).where(conversations.c.owner == user_id)
        .order_by(conversations.c.created_at, conversations.c.id)
    ).all()
    documents = []
    for row in owned:
        rows = conn.execute(
            select(turns).where(turns.c.conversation_id == row.id).order_by(turns.c.id)
        ).all()
        documents.append(_conversation(row, rows, complete=True))
    documents += _shared_exchanges(conn, user_id, skip={row.id for row in owned})
    profile = conn.execute(select(profiles).where(profiles.c.id == user_id)).one_or_none()
    requested_or_commented = or_(
        tickets.c.requester == user_id,
        tickets.c.id.in_(select(ticket_comments.c.ticket_id)
                         .where(ticket_comments.c.author == user_id)),
    )
    return _document(
        conn, {"kind": "user", "id": user_id},
        profile=None if profile is None else {
            "id": profile.id, **{name: getattr(profile, name) for name in PROFILE_FIELDS},
            "updated_at": _iso(profile.updated_at),
        },
        conversations=documents,
        feedback_rows=conn.execute(
            select(feedback, turns.c.conversation_id).join(turns)
            .where(feedback.c.rater == user_id).order_by(feedback.c.id)
        ).all(),
        ticket_rows=conn.execute(
            select(tickets).where(requested_or_commented).order_by(tickets.c.id)
        ).all(),
    )


def _shared_exchanges(
    conn: Connection, user_id: str, *, skip: set[str]
) -> list[dict[str, Any]]:
    """From threads nobody owns: the turns of the messages `user_id` sent (found by the
    sender recorded with each inbox item)."""
    items = list(_items_sent_by(conn, user_id))
    if not items:
        return []
    rows = conn.execute(
        select(turns).where(turns.c.inbox_item_id.in_(items), turns.c.conversation_id.not_in(skip))
        .order_by(turns.c.conversation_id, turns.c.id)
    ).all()
    by_conversation: dict[str, list[Row[Any]]] = {}
    for turn in rows:
        by_conversation.setdefault(turn.conversation_id, []).append(turn)
    heads = conn.execute(
        select(conversations).where(conversations.c.id.in_(list(by_conversation)))
        .order_by(conversations.c.created_at, conversations.c.id)
    ).all()
    return [_conversation(row, by_conversation[row.id], complete=False) for row in heads]


def _items_sent_by(conn: Connection, user_id: str) -> Iterator[int]:
    # The sender lives only in the stored message (JSON, queried differently by each
    # database): read the channel's items a page at a time and look.
    channel = user_id.split(":", 1)[0]
    after = 0
    while True:
        page = conn.execute(
            select(inbox.c.id, inbox.c.payload)
            .where(inbox.c.channel == channel, inbox.c.id > after)
            .order_by(inbox.c.id).limit(_PAGE)
        ).all()
        for item in page:
            sender = (item.payload or {}).get("sender") or {}
            if sender.get("id") == user_id:
                yield item.id
        if len(page) < _PAGE:
            return
        after = page[-1].id


def _feedback_on(turn_ids: list[int], conn: Connection) -> list[Row[Any]]:
    if not turn_ids:
        return []
    return conn.execute(
        select(feedback, turns.c.conversation_id).join(turns)
        .where(feedback.c.turn_id.in_(turn_ids)).order_by(feedback.c.id)
    ).all()


def _document(
    conn: Connection, subject: dict[str, str], *, profile: dict[str, Any] | None,
    conversations: list[dict[str, Any]], feedback_rows: Iterable[Row[Any]],
    ticket_rows: Iterable[Row[Any]],
) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "subject": subject,
        "profile": profile,
        "conversations": conversations,
        "feedback": [
            {"turn_id": f.turn_id, "conversation_id": f.conversation_id, "rater": f.rater,
             "rating": f.rating, "comment": f.comment, "created_at": _iso(f.created_at),
             "updated_at": _iso(f.updated_at)}
            for f in feedback_rows
        ],
        "tickets": [_ticket(conn, row) for row in ticket_rows],
    }


def _conversation(row: Row[Any], turn_rows: Iterable[Row[Any]], *, complete: bool) -> dict[str, Any]:
    return {
        "id": row.id, "channel": row.channel, "tenant": row.tenant,
        "conversation": row.external_id, "thread": row.thread_id or None,
        "owner": row.owner, "created_at": _iso(row.created_at),
        "updated_at": _iso(row.updated_at), "complete": complete,
        "turns": [
            {"id": t.id, "role": t.role, "content": t.content, "tool_calls": t.tool_calls,
             "tool_call_id": t.tool_call_id, "citations": t.citations,
             "created_at": _iso(t.created_at)}
            for t in turn_rows
        ],
    }


def _ticket(conn: Connection, row: Row[Any]) -> dict[str, Any]:
    comments = tuple(
        Comment(author=c.author, author_name=c.author_name, text=c.text, created_at=c.created_at)
        for c in conn.execute(select(ticket_comments)
                              .where(ticket_comments.c.ticket_id == row.id)
                              .order_by(ticket_comments.c.id))
    )
    return ticket_json(to_ticket(row, comments))


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()
