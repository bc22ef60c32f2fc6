"""What the orchestrator exchanges with a chat model: messages in, a stream of events out."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from core.knowledge import Passage

Role = Literal["system", "user", "assistant", "tool"]


@dataclass(frozen=True, kw_only=True, slots=True)
class ToolCall:
    """A call the model asked for. `arguments` is the model's raw JSON text, unvalidated."""

    id: str
    name: str
    arguments: str


@dataclass(frozen=True, kw_only=True, slots=True)
class ChatMessage:
    role: Role
    content: str
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class ToolSpec:
    """A tool as the model sees it: name, description and JSON schema of its arguments."""

    name: str
    description: str
    parameters: dict[str, Any]


@dataclass(frozen=True, kw_only=True, slots=True)
class ChatRequest:
    """One call to the model. `passages` are the knowledge already numbered into the
    system prompt; a model that cannot read prompts (the offline responder) uses them."""

    messages: tuple[ChatMessage, ...]
    tools: tuple[ToolSpec, ...] = ()
    passages: tuple[Passage, ...] = ()


@dataclass(frozen=True, kw_only=True, slots=True)
class ModelText:
    text: str
    kind: Literal["text"] = "text"


@dataclass(frozen=True, kw_only=True, slots=True)
class ModelToolCalls:
    """Every tool call of this response, assembled; sent once, after the last text."""

    calls: tuple[ToolCall, ...]
    kind: Literal["tool_calls"] = "tool_calls"


@dataclass(frozen=True, kw_only=True, slots=True)
class ModelUsage:
    prompt_tokens: int
    completion_tokens: int
    kind: Literal["usage"] = "usage"


ModelEvent = ModelText | ModelToolCalls | ModelUsage
