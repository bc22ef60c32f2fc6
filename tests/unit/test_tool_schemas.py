"""Tool schemas derive from type hints and docstrings; arguments are validated first."""

from __future__ import annotations

import enum
from typing import Literal

import pytest
from pydantic import BaseModel

from core.model import ToolCall
from core.tools.registry import ToolContext, ToolRegistry, tool


class Priority(enum.Enum):
    LOW = "low"
    HIGH = "high"


class Address(BaseModel):
    street: str
    city: str
    title: str | None = None


@tool(title="Booking a room")
async def book_room(
    ctx: ToolContext,
    room: str,
    people: int,
    hours: float,
    projector: bool,
    kind: Literal["meeting", "focus"],
    priority: Priority,
    note: str | None = None,
    invitees: list[str] | None = None,
    address: Address | None = None,
) -> dict[str, object]:
    """Book a meeting room.

    Only rooms in the person's own office can be booked.

    Args:
        room: Name of the room, e.g. "Kepler".
        people: How many people will attend.
        hours: Length of the booking in hours.
        projector: Whether a projector is needed.
        kind: What the room is for.
        priority: How urgent the booking is.
        note: A note for the front desk.
        invitees: Email addresses to invite.
        address: Where the office is, if not the person's usual one.
    """
    return {"room": room, "address": address.model_dump() if address else None}


def test_schema_covers_every_supported_annotation() -> None:
    schema = book_room.spec.parameters
    props = schema["properties"]
    assert schema["type"] == "object"
    assert schema["additionalProperties"] is False
    assert set(schema["required"]) == {"room", "people", "hours", "projector", "kind", "priority"}
    assert props["room"] == {"type": "string", "description": 'Name of the room, e.g. "Kepler".'}
    assert props["people"]["type"] == "integer"
    assert props["hours"]["type"] == "number"
    assert props["projector"]["type"] == "boolean"
    assert props["kind"]["enum"] == ["meeting", "focus"]
    assert props["priority"]["enum"] == ["low", "high"]
    assert {"type": "null"} in props["note"]["anyOf"]
    assert {"type": "array", "items": {"type": "string"}} in props["invitees"]["anyOf"]
    address = next(s for s in props["address"]["anyOf"] if s.get("type") == "object")
    # Nested models are inlined (no $ref) and a field named "title" survives title-stripping.
    assert set(address["properties"]) == {"street", "city", "title"}
    assert "$defs" not in schema and "$ref" not in str(schema)


def test_docstring_becomes_the_description_and_title_is_for_people() -> None:
    assert book_room.description.startswith("Book a meeting room.")
    assert "own office" in book_room.description
    assert "Args" not in book_room.description
    assert book_room.title == "Booking a room"


def test_a_tool_without_docstring_or_context_is_refused() -> None:
    with pytest.raises(TypeError, match="docstring"):

        @tool
        async def silent(ctx: ToolContext) -> str:
            return ""

    with pytest.raises(TypeError, match="ToolContext"):

        @tool
        async def no_context(room: str) -> str:
            """Does nothing."""
            return room


async def test_invalid_arguments_are_reported_to_the_model_without_calling(tool_ctx: ToolContext) -> None:
    registry = ToolRegistry([book_room])
    outcome = await registry.run(
        ToolCall(id="c1", name="book_room", arguments='{"room": "Kepler", "people": "many"}'), tool_ctx
    )
    assert not outcome.ok
    assert outcome.content.startswith("Invalid arguments for book_room:")
    assert "people" in outcome.content and "hours" in outcome.content


async def test_valid_arguments_arrive_typed(tool_ctx: ToolContext) -> None:
    registry = ToolRegistry([book_room])
    args = (
        '{"room": "Kepler", "people": 3, "hours": 1.5, "projector": true, "kind": "focus",'
        ' "priority": "high", "address": {"street": "Main 1", "city": "Oslo"}}'
    )
    outcome = await registry.run(ToolCall(id="c1", name="book_room", arguments=args), tool_ctx)
    assert outcome.ok
    assert '"city":"Oslo"' in outcome.content
