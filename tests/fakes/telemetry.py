"""A `Telemetry` that keeps what it was told, for tests that read what was observed."""

from __future__ import annotations

from dataclasses import dataclass, field

from core.ports import MessageOutcome, ModelOutcome


@dataclass
class RecordingTelemetry:
    received_on: list[str] = field(default_factory=list)
    messages: list[tuple[str, MessageOutcome, str]] = field(default_factory=list)
    first_signs: list[str] = field(default_factory=list)
    first_tokens: list[str] = field(default_factory=list)
    model_calls: list[tuple[str, ModelOutcome]] = field(default_factory=list)
    tokens: list[tuple[int, int]] = field(default_factory=list)
    tools: list[tuple[str, bool]] = field(default_factory=list)
    searches: list[bool] = field(default_factory=list)

    def received(self, channel: str) -> None:
        self.received_on.append(channel)

    def message(self, channel: str, outcome: MessageOutcome, *, detail: str = "") -> None:
        self.messages.append((channel, outcome, detail))

    def first_sign(self, channel: str, seconds: float) -> None:
        assert seconds >= 0
        self.first_signs.append(channel)

    def first_token(self, channel: str, seconds: float) -> None:
        assert seconds >= 0
        self.first_tokens.append(channel)

    def model_call(self, model: str, *, outcome: ModelOutcome, seconds: float,
                   first_token: float | None) -> None:
        self.model_calls.append((model, outcome))

    def model_tokens(self, model: str, *, prompt: int, completion: int) -> None:
        self.tokens.append((prompt, completion))

    def tool_call(self, tool: str, *, ok: bool) -> None:
        self.tools.append((tool, ok))

    def retrieval(self, *, seconds: float, ok: bool) -> None:
        self.searches.append(ok)
