"""In-process fakes for unit tests: a scripted chat model and a recording replier."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

from core.model import ChatRequest, ModelEvent, ModelText, ModelToolCalls, ToolCall
from core.replies import ReplyEvent


def says(*chunks: str) -> list[ModelEvent]:
    return [ModelText(text=c) for c in chunks]


def calls(*pairs: tuple[str, str], text: str = "") -> list[ModelEvent]:
    events: list[ModelEvent] = [ModelText(text=text)] if text else []
    tool_calls = tuple(
        ToolCall(id=f"call_{n}", name=name, arguments=args) for n, (name, args) in enumerate(pairs)
    )
    return [*events, ModelToolCalls(calls=tool_calls)]


class Stall:
    """In a scripted step: the model goes quiet here and never says another word."""


STALL = Stall()
Scripted = ModelEvent | Exception | Stall


class ScriptedChatModel:
    """Answers each request with the next scripted step: events to stream, or an
    exception to raise. A step's events may end in an exception (the stream breaks
    there) or `STALL` (it never ends). Records every request it was given."""

    name = "scripted"

    def __init__(self, steps: Sequence[list[Scripted] | Exception] = ()) -> None:
        self.steps = list(steps)
        self.requests: list[ChatRequest] = []

    async def stream(self, request: ChatRequest) -> AsyncIterator[ModelEvent]:
        self.requests.append(request)
        step = self.steps.pop(0)
        if isinstance(step, Exception):
            raise step
        for event in step:
            await asyncio.sleep(0)
            if isinstance(event, Exception):
                raise event
            if isinstance(event, Stall):
                await asyncio.Event().wait()
            else:
                yield event


class RecordingReplier:
    def __init__(self) -> None:
        self.events: list[ReplyEvent] = []
        self.finished = asyncio.Event()

    async def send(self, event: ReplyEvent) -> None:
        self.events.append(event)
        if event.kind in ("done", "failed", "withdrawn"):
            self.finished.set()

    def kinds(self) -> list[str]:
        return [e.kind for e in self.events]

    def text(self) -> str:
        return "".join(getattr(e, "text", "") for e in self.events if e.kind == "delta")
