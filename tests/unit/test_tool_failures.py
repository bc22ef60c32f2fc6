"""Every tool failure becomes a result the model can read; the turn goes on."""

from __future__ import annotations

import asyncio
import logging

import pytest

from core.errors import ToolError
from core.model import ToolCall
from core.tools.registry import ToolContext, ToolRegistry, tool


@tool(timeout=0.05)
async def slow(ctx: ToolContext) -> str:
    """Never finishes in time."""
    await asyncio.Event().wait()
    return "unreachable"


@tool
async def crash(ctx: ToolContext) -> str:
    """Raises an unexpected error."""
    raise RuntimeError("database password=hunter2 leaked in a traceback")


@tool
async def refuse(ctx: ToolContext, ticket: int) -> str:
    """Refuses politely.

    Args:
        ticket: The ticket number.
    """
    raise ToolError(f"ticket {ticket} does not exist")



def _call(name: str, args: str = "{}", call_id: str = "c1") -> ToolCall:
    return ToolCall(id=call_id, name=name, arguments=args)


async def test_unknown_tool_names_the_available_ones(tool_ctx: ToolContext) -> None:
    outcome = await ToolRegistry([refuse]).run(_call("delete_everything"), tool_ctx)
    assert not outcome.ok
    assert outcome.content == "Unknown tool 'delete_everything'. Available: refuse."


async def test_timeout_is_reported_not_raised(tool_ctx: ToolContext) -> None:
    outcome = await ToolRegistry([slow]).run(_call("slow"), tool_ctx)
    assert not outcome.ok
    assert "timed out" in outcome.content


async def test_crash_is_logged_and_model_gets_a_reference_not_the_traceback(
    tool_ctx: ToolContext, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR):
        outcome = await ToolRegistry([crash]).run(_call("crash"), tool_ctx)
    assert not outcome.ok
    assert "internal error (reference " in outcome.content
    assert "hunter2" not in outcome.content and "RuntimeError" not in outcome.content
    assert any("tool crash failed" in r.getMessage() for r in caplog.records)


async def test_tool_error_message_reaches_the_model(tool_ctx: ToolContext) -> None:
    outcome = await ToolRegistry([refuse]).run(_call("refuse", '{"ticket": 7}'), tool_ctx)
    assert outcome.content == "Error: ticket 7 does not exist"


async def test_malformed_json_arguments_are_invalid_arguments(tool_ctx: ToolContext) -> None:
    outcome = await ToolRegistry([refuse]).run(_call("refuse", '{"ticket": 7'), tool_ctx)
    assert outcome.content.startswith("Invalid arguments for refuse:")


async def test_parallel_calls_run_concurrently_and_keep_call_order(tool_ctx: ToolContext) -> None:
    arrived: list[str] = []
    gate = asyncio.Event()

    @tool
    async def wait_for_peer(ctx: ToolContext, name: str) -> str:
        """Waits until both calls have started.

        Args:
            name: Which call this is.
        """
        arrived.append(name)
        if len(arrived) == 2:
            gate.set()
        await gate.wait()  # deadlocks (and times out) unless both run at once
        return name

    registry = ToolRegistry([wait_for_peer])
    outcomes = await asyncio.wait_for(
        registry.run_all(
            [
                _call("wait_for_peer", '{"name": "a"}', "c1"),
                _call("wait_for_peer", '{"name": "b"}', "c2"),
            ],
            tool_ctx,
        ),
        timeout=5,
    )
    assert [o.content for o in outcomes] == ["a", "b"]
    assert [o.call.id for o in outcomes] == ["c1", "c2"]


def test_registering_a_name_twice_is_refused() -> None:
    with pytest.raises(ValueError, match="twice"):
        ToolRegistry([refuse, refuse])
