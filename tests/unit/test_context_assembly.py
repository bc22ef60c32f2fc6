"""Providers run concurrently under a timeout each; a failing one is skipped; the system
prompt and the newest message are always sent, whatever the budget."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from adapters.llm.tokens import EstimatingTokenCounter
from core.context import ContextAssembler, ContextPart, TurnInput
from core.messages import ConversationRef, InboundMessage, Sender
from core.threads import Conversation, Turn

REF = ConversationRef(channel="test", tenant="t", conversation="c")


def turn_input(text: str = "What is our leave policy?") -> TurnInput:
    now = datetime.now(UTC)
    return TurnInput(
        item_id=1,
        message=InboundMessage(
            id="m1", conversation=REF, sender=Sender(id="test:t:ada"), text=text,
            sent_at=now, is_direct=True,
        ),
        conversation=Conversation(id="c1", ref=REF, owner=None, created_at=now, updated_at=now),
    )


class Note:
    def __init__(self, name: str, note: str, started: list[str] | None = None,
                 gate: asyncio.Event | None = None) -> None:
        self.name, self._note, self._started, self._gate = name, note, started, gate

    async def provide(self, turn: TurnInput) -> ContextPart:
        if self._started is not None:
            self._started.append(self.name)
        if self._gate is not None:
            await self._gate.wait()
        return ContextPart(notes=(self._note,))


class Broken:
    name = "broken"

    async def provide(self, turn: TurnInput) -> ContextPart:
        raise RuntimeError("directory service down")


class Stuck:
    name = "stuck"

    async def provide(self, turn: TurnInput) -> ContextPart:
        await asyncio.Event().wait()
        return ContextPart()


def assembler(*providers: object, budget: int = 8000, timeout: float = 2.0) -> ContextAssembler:
    return ContextAssembler(
        system_prompt="You are Switchboard.",
        providers=providers,  # type: ignore[arg-type]
        counter=EstimatingTokenCounter(),
        budget_tokens=budget,
        provider_timeout=timeout,
    )


async def test_a_failing_or_slow_provider_is_skipped_and_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING):
        context = await assembler(
            Broken(), Stuck(), Note("profile", "Ada works in Engines."), timeout=0.1
        ).assemble(turn_input())
    assert context.system.content == "You are Switchboard.\n\nAda works in Engines."
    failed = {r.getMessage().split()[2] for r in caplog.records}
    assert failed == {"broken", "stuck"}


async def test_when_the_knowledge_base_is_unreachable_the_model_is_told_to_say_so() -> None:
    from core.context import KnowledgeProvider

    class Unreachable:
        async def search(self, *_: object, **__: object) -> list[object]:
            raise ConnectionError("qdrant: connection refused")

    knowledge = KnowledgeProvider(Unreachable())  # type: ignore[arg-type]
    context = await assembler(knowledge).assemble(turn_input())
    assert "knowledge base could not be searched" in context.system.content
    assert context.passages == ()
    assert context.notices == (KnowledgeProvider.unavailable_notice,)  # for the person


async def test_providers_run_concurrently() -> None:
    started: list[str] = []
    gate = asyncio.Event()
    a, b = Note("a", "A.", started, gate), Note("b", "B.", started, gate)
    task = asyncio.create_task(assembler(a, b).assemble(turn_input()))
    while len(started) < 2:  # both are waiting on the gate at once
        await asyncio.sleep(0)
    gate.set()
    context = await task
    assert context.system.content.endswith("A.\n\nB.")


async def test_system_prompt_and_newest_message_survive_any_budget() -> None:
    long_question = "Please explain " + "in great detail " * 500
    context = await assembler(budget=10).assemble(turn_input(long_question))
    assert context.messages[0].content == "You are Switchboard."
    assert context.messages[-1].content == long_question


class CountingCounter(EstimatingTokenCounter):
    """Estimates, and remembers that it was asked (a real tokenizer costs ~40 MB)."""

    def __init__(self) -> None:
        self.asked = 0

    def count(self, text: str) -> int:
        self.asked += 1
        return super().count(text)


def history_of(pairs: int, words: int) -> tuple[Turn, ...]:
    now = datetime.now(UTC)
    return tuple(
        Turn(id=n, conversation_id="c1", role="user" if n % 2 == 0 else "assistant",
             content=" ".join(["word"] * words), tool_calls=(), tool_call_id=None, tokens=0,
             citations=(), inbox_item_id=n // 2, created_at=now)
        for n in range(2 * pairs)
    )


async def test_a_context_that_surely_fits_is_not_counted() -> None:
    counter = CountingCounter()
    assembled = await ContextAssembler(
        system_prompt="You are Switchboard.", providers=(), counter=counter, budget_tokens=8000,
    ).assemble(replace(turn_input(), history=history_of(pairs=5, words=20)))

    assert counter.asked == 0 and assembled.dropped_turns == 0
    assert len(assembled.history) == 10


async def test_a_context_over_the_bound_is_counted_and_trimmed_to_the_budget() -> None:
    counter = CountingCounter()
    assembled = await ContextAssembler(
        system_prompt="You are Switchboard.", providers=(), counter=counter, budget_tokens=600,
    ).assemble(replace(turn_input(), history=history_of(pairs=20, words=40)))

    assert counter.asked > 0 and assembled.dropped_turns > 0
    kept = sum(counter.count_message(m) for m in (assembled.system, *assembled.history,
                                                  assembled.user))
    assert kept <= 600
