"""Conversations and the turns stored in them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from core.messages import Citation, ConversationRef
from core.model import ChatMessage, Role, ToolCall
from core.text.storable import storable


@dataclass(frozen=True, kw_only=True, slots=True)
class Conversation:
    """A thread as we store it. `owner` is the sender id for private threads (DM, web,
    terminal) and None for shared ones (a Slack channel thread, a Teams channel)."""

    id: str
    ref: ConversationRef
    owner: str | None
    created_at: datetime
    updated_at: datetime
    title: str | None = None  # named after its first question (`core/titles.py`)


@dataclass(frozen=True, kw_only=True, slots=True)
class ConversationSummary:
    """One line of a person's conversation list: `title` is the conversation's title, or
    the start of the first message in it before it has one ("" before one is stored)."""

    id: str
    title: str
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, kw_only=True, slots=True)
class ListPosition:
    """Where a page of a conversation list ended: the next page starts after it."""

    updated_at: datetime
    id: str


@dataclass(frozen=True, kw_only=True, slots=True)
class NewTurn:
    role: Role
    content: str
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None
    tokens: int = 0
    citations: tuple[Citation, ...] = ()
    inbox_item_id: int | None = None

    def __post_init__(self) -> None:
        # The model's text and a tool's result are stored as they come, too.
        object.__setattr__(self, "content", storable(self.content))


@dataclass(frozen=True, kw_only=True, slots=True)
class Turn:
    id: int
    conversation_id: str
    role: Role
    content: str
    tool_calls: tuple[ToolCall, ...]
    tool_call_id: str | None
    tokens: int
    citations: tuple[Citation, ...]
    inbox_item_id: int | None
    created_at: datetime

    def as_message(self) -> ChatMessage:
        return ChatMessage(
            role=self.role,
            content=self.content,
            tool_calls=self.tool_calls,
            tool_call_id=self.tool_call_id,
        )
