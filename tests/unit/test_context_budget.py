"""History is trimmed to the token budget by whole exchanges, newest kept."""

from __future__ import annotations

from datetime import UTC, datetime

from adapters.llm.tokens import EstimatingTokenCounter
from core.context import trim_history
from core.model import ToolCall
from core.threads import Turn

_id = iter(range(1, 10_000))


def turn(role: str, content: str = "x", tokens: int = 10, **kw: object) -> Turn:
    return Turn(
        id=next(_id),
        conversation_id="c",
        role=role,  # type: ignore[arg-type]
        content=content,
        tool_calls=kw.get("tool_calls", ()),  # type: ignore[arg-type]
        tool_call_id=kw.get("tool_call_id"),  # type: ignore[arg-type]
        tokens=tokens,
        citations=(),
        inbox_item_id=None,
        created_at=datetime.now(UTC),
    )


def test_newest_exchanges_are_kept_within_the_room() -> None:
    turns = [turn("user", "q1"), turn("assistant", "a1"), turn("user", "q2"), turn("assistant", "a2")]
    kept, dropped = trim_history(turns, room=25, counter=EstimatingTokenCounter())
    assert [t.content for t in kept] == ["q2", "a2"]
    assert dropped == 2


def test_a_tool_call_is_never_separated_from_its_result() -> None:
    call = ToolCall(id="t1", name="get_user_info", arguments="{}")
    turns = [
        turn("user", "q1"),
        turn("assistant", "a1"),
        turn("user", "q2"),
        turn("assistant", "", tool_calls=(call,)),
        turn("tool", "{}", tool_call_id="t1"),
        turn("assistant", "a2"),
    ]
    # Room for three turns: the newest exchange needs four, so none of it may be cut in half.
    kept, _ = trim_history(turns, room=30, counter=EstimatingTokenCounter())
    assert kept == []
    kept, _ = trim_history(turns, room=40, counter=EstimatingTokenCounter())
    assert [t.role for t in kept] == ["user", "assistant", "tool", "assistant"]


def test_a_window_cut_mid_exchange_drops_the_orphaned_turns() -> None:
    turns = [turn("tool", "{}", tool_call_id="t0"), turn("assistant", "a0"), turn("user", "q1")]
    kept, dropped = trim_history(turns, room=1000, counter=EstimatingTokenCounter())
    assert [t.content for t in kept] == ["q1"]
    assert dropped == 2


def test_no_room_keeps_nothing() -> None:
    kept, dropped = trim_history([turn("user"), turn("assistant")], room=-5, counter=EstimatingTokenCounter())
    assert kept == [] and dropped == 2
