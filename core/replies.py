"""What the orchestrator tells a `Replier` while it answers; each channel renders these.

Text is CommonMark. A turn sends any number of `Status`, `TextDelta`, `ToolProgress` and
(once, for a new conversation) `Titled` events, then exactly one `ReplyDone` or `ReplyFailed` — or `ReplyWithdrawn`, when another
worker took the message over and answers it instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import Field, TypeAdapter

from core.messages import Citation

# How a stopped answer ends, in the message and in the thread's history.
STOPPED_MARK = "_Stopped._"


@dataclass(frozen=True, kw_only=True, slots=True)
class Status:
    """A short "working" indicator ("Thinking…", "Looking up your profile…")."""

    text: str
    kind: Literal["status"] = "status"


@dataclass(frozen=True, kw_only=True, slots=True)
class TextDelta:
    text: str
    kind: Literal["delta"] = "delta"


@dataclass(frozen=True, kw_only=True, slots=True)
class ToolProgress:
    call_id: str
    tool: str
    title: str
    state: Literal["running", "done", "failed"]
    kind: Literal["tool"] = "tool"


@dataclass(frozen=True, kw_only=True, slots=True)
class ReplyDone:
    """The complete answer. `text` is everything the deltas carried, so a channel that
    could not stream (or lost its stream) can still deliver the whole answer once.
    `stopped`: the person (or an admin) stopped it; `text` is what was written until then,
    ending with `STOPPED_MARK`, and it is stored so in the thread."""

    text: str
    citations: tuple[Citation, ...] = ()
    turn_id: int | None = None
    feedback: bool = True
    stopped: bool = False
    kind: Literal["done"] = "done"


@dataclass(frozen=True, kw_only=True, slots=True)
class Titled:
    """The conversation got its title (from its first question), for channels that show
    one: a Slack assistant thread or agent session, the web page's conversation list."""

    title: str
    kind: Literal["title"] = "title"


@dataclass(frozen=True, kw_only=True, slots=True)
class ReplyFailed:
    """A short apology for the person; never exception text. `reference` ties it to the log."""

    text: str
    reference: str
    kind: Literal["failed"] = "failed"


@dataclass(frozen=True, kw_only=True, slots=True)
class ReplyWithdrawn:
    """This attempt lost its message to another worker (its lease ran out while it could
    not renew it), which answers instead. What this attempt showed is taken back, unless
    it is `kept`: the message the new owner was told to finish (the item's noted reply)."""

    kept: str | None = None
    kind: Literal["withdrawn"] = "withdrawn"


ReplyEvent = Status | TextDelta | ToolProgress | Titled | ReplyDone | ReplyFailed | ReplyWithdrawn


_events: TypeAdapter[ReplyEvent] = TypeAdapter(
    Annotated[ReplyEvent, Field(discriminator="kind")]
)


def event_to_json(event: ReplyEvent) -> bytes:
    """One event as JSON, to cross a process boundary (the reply relay)."""
    return _events.dump_json(event)


def event_from_json(data: bytes | str) -> ReplyEvent:
    return _events.validate_json(data)
