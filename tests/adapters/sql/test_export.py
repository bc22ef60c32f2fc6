"""Exports on SQLite and PostgreSQL: one conversation whole, or what is kept about one
person — their own conversations whole, and only their exchanges from shared threads."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.sql.export import FORMAT, export_conversation, export_user
from core.messages import ConversationRef
from tests.adapters.sql.history import Writer

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
ADA, BOB = "slack:T1:U1", "slack:T1:U2"
THREAD = ConversationRef(channel="slack", tenant="T1", conversation="C1", thread="1700.1")
DM = ConversationRef(channel="slack", tenant="T1", conversation="D1")
DAY = timedelta(days=1)


async def _seed(engine: AsyncEngine) -> dict[str, str]:
    async with engine.begin() as conn:
        w = Writer(conn, NOW)
        shared = await w.conversation(THREAD, created=2 * DAY, updated=DAY)
        _, _, to_ada = await w.exchange(shared, THREAD, ADA, "ada asks", "answer for ada",
                                        age=2 * DAY)
        _, _, to_bob = await w.exchange(shared, THREAD, BOB, "bob asks", "answer for bob",
                                        age=DAY)
        await w.rating(to_ada, ADA, "up", age=DAY)
        await w.rating(to_bob, BOB, "down", age=DAY)
        await w.profile(ADA, name="Ada Lovelace", email="ada@example.com")
        dm = await w.conversation(DM, created=DAY, updated=DAY, owner=ADA)
        await w.exchange(dm, DM, ADA, "private question", "private answer", age=DAY)
        mine = await w.ticket("Ada's laptop", ADA, status="open", age=DAY, origin=THREAD)
        await w.comment(mine, ADA, "still broken", age=DAY)
        bobs = await w.ticket("Bob's printer", BOB, status="open", age=DAY)
        await w.comment(bobs, ADA, "mine too", age=DAY)
        await w.ticket("Bob's chair", BOB, status="open", age=DAY)
    return {"shared": shared, "dm": dm}


async def _export(engine: AsyncEngine, unit: object, **args: str) -> dict[str, object] | None:
    async with engine.begin() as conn:
        document = await conn.run_sync(unit, **args)  # type: ignore[arg-type]
    json.dumps(document)  # JSON-ready as it stands
    return document  # type: ignore[no-any-return]


async def test_a_person_gets_their_conversations_and_only_their_part_of_shared_threads(
    engine: AsyncEngine,
) -> None:
    ids = await _seed(engine)

    document = await _export(engine, export_user, user_id=ADA)

    assert document is not None
    assert document["format"] == FORMAT and document["subject"] == {"kind": "user", "id": ADA}
    assert document["profile"]["email"] == "ada@example.com"  # type: ignore[index]
    by_id = {c["id"]: c for c in document["conversations"]}  # type: ignore[attr-defined]
    assert set(by_id) == {ids["shared"], ids["dm"]}
    assert by_id[ids["dm"]]["complete"] is True
    assert [t["content"] for t in by_id[ids["dm"]]["turns"]] == ["private question",
                                                                 "private answer"]
    shared = by_id[ids["shared"]]
    assert shared["complete"] is False and shared["thread"] == "1700.1"
    assert [t["content"] for t in shared["turns"]] == ["ada asks", "answer for ada"]
    assert [(f["rater"], f["rating"]) for f in document["feedback"]] == [(ADA, "up")]  # type: ignore[attr-defined]
    titles = {t["title"] for t in document["tickets"]}  # type: ignore[attr-defined]
    assert titles == {"Ada's laptop", "Bob's printer"}  # requested, or commented on


async def test_a_conversation_comes_whole_with_its_ratings_and_tickets(
    engine: AsyncEngine,
) -> None:
    ids = await _seed(engine)

    document = await _export(engine, export_conversation, conversation_id=ids["shared"])

    assert document is not None and document["profile"] is None
    [conversation] = document["conversations"]  # type: ignore[misc]
    assert conversation["complete"] is True
    assert [t["role"] for t in conversation["turns"]] == ["user", "assistant"] * 2
    assert sorted(f["rater"] for f in document["feedback"]) == [ADA, BOB]  # type: ignore[attr-defined]
    [ticket] = document["tickets"]  # type: ignore[misc]
    assert ticket["title"] == "Ada's laptop" and ticket["comments"][0]["text"] == "still broken"


async def test_an_unknown_conversation_is_none_and_an_unknown_person_is_empty(
    engine: AsyncEngine,
) -> None:
    await _seed(engine)
    assert await _export(engine, export_conversation, conversation_id="nope") is None
    empty = await _export(engine, export_user, user_id="slack:T1:U9")
    assert empty is not None
    assert (empty["conversations"], empty["feedback"], empty["tickets"]) == ([], [], [])


async def test_the_document_has_exactly_the_documented_shape(engine: AsyncEngine) -> None:
    """The README's "Retention and export" shows these keys; a change is a new FORMAT."""
    await _seed(engine)

    document = await _export(engine, export_user, user_id=ADA)

    assert document is not None
    assert set(document) == {"format", "subject", "profile", "conversations", "feedback",
                             "tickets"}  # `switchboard export` adds "exported_at"
    conversation = document["conversations"][0]  # type: ignore[index]
    assert set(conversation) == {"id", "channel", "tenant", "conversation", "thread", "owner",
                                 "created_at", "updated_at", "complete", "turns"}
    assert set(conversation["turns"][0]) == {"id", "role", "content", "tool_calls",
                                             "tool_call_id", "citations", "created_at"}
    assert set(document["feedback"][0]) == {  # type: ignore[index]
        "turn_id", "conversation_id", "rater", "rating", "comment", "created_at", "updated_at"}
    assert set(document["profile"]) == {  # type: ignore[arg-type]
        "id", "name", "email", "title", "department", "time_zone", "preferences", "updated_at"}
