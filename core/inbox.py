"""The durable inbox's records: every inbound message is one item, claimed under a lease."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from core.messages import InboundMessage

ItemStatus = Literal["pending", "processing", "done", "failed"]


@dataclass(frozen=True, kw_only=True, slots=True)
class InboxItem:
    id: int
    message: InboundMessage
    status: ItemStatus
    attempts: int
    lease_until: datetime | None
    last_error: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class Recorded:
    """First delivery: stored, pending (or claimed, when the caller asked to claim it)."""

    item: InboxItem
    kind: Literal["recorded"] = "recorded"


@dataclass(frozen=True, kw_only=True, slots=True)
class Requeued:
    """A redelivery of a message whose answer failed: it is pending (or claimed) again."""

    item: InboxItem
    kind: Literal["requeued"] = "requeued"


@dataclass(frozen=True, kw_only=True, slots=True)
class Duplicate:
    """A redelivery of a message already waiting, being answered, or answered."""

    item_id: int
    status: ItemStatus
    kind: Literal["duplicate"] = "duplicate"


RecordOutcome = Recorded | Requeued | Duplicate
