"""The one message type every channel translates into, and what a reply cites."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import TypeAdapter

from core.text.storable import storable


@dataclass(frozen=True, kw_only=True, slots=True)
class ConversationRef:
    """Where a message came from and where its answer goes.

    `channel` is the adapter ("slack", "teams", "web", "cli"); `tenant` the workspace,
    Azure tenant or installation; `conversation` the platform's conversation id; `thread`
    the thread root inside it, when the platform has threads.
    """

    channel: str
    tenant: str
    conversation: str
    thread: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class Sender:
    """The verified author of a message. `id` is channel-scoped: `channel:tenant:user`.
    `time_zone` (IANA) is what the channel could tell (Slack's profile, the browser)."""

    id: str
    name: str | None = None
    email: str | None = None
    groups: tuple[str, ...] = ()
    time_zone: str | None = None

    def __post_init__(self) -> None:
        if self.name is not None:  # kept in the person's profile
            object.__setattr__(self, "name", storable(self.name))


@dataclass(frozen=True, kw_only=True, slots=True)
class Attachment:
    name: str
    content_type: str | None = None
    url: str | None = None
    size: int | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class InboundMessage:
    """One message from a person, as every adapter hands it to the inbox.

    `id` is the platform's message id, unique within (channel, tenant); a second delivery
    with the same id is refused by the inbox. `channel_data` carries raw platform fields
    that only the originating adapter reads (for example a Teams conversation reference).
    """

    id: str
    conversation: ConversationRef
    sender: Sender
    text: str
    sent_at: datetime
    is_direct: bool
    attachments: tuple[Attachment, ...] = ()
    channel_data: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Here, so every channel's messages and those already in the inbox (read back
        # through `message_from_json`) are the same on SQLite and PostgreSQL.
        object.__setattr__(self, "text", storable(self.text))


@dataclass(frozen=True, kw_only=True, slots=True)
class Citation:
    """A source the answer used, numbered as the model cites it (`[n]`). `source` is the
    document's key in the knowledge index, so a page without a `url` (a local file) can
    still show the document (citations stored before it existed have none)."""

    index: int
    title: str
    url: str | None = None
    snippet: str | None = None
    source: str | None = None


_inbound = TypeAdapter(InboundMessage)


def message_to_json(message: InboundMessage) -> dict[str, Any]:
    """JSON-safe form for durable storage (the inbox keeps it to retry after a crash)."""
    data: dict[str, Any] = _inbound.dump_python(message, mode="json")
    return data


def message_from_json(data: dict[str, Any]) -> InboundMessage:
    return _inbound.validate_python(data)
