from __future__ import annotations

import asyncio
from datetime import UTC, timedelta

import pytest
from sqlalchemy import Table, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.sql.conversations import SqlConversationStore, recent_turns_query
from adapters.sql.tables import conversations as conversations_table
from adapters.sql.tables import turns as turns_table
from core.errors import StorageError
from core.messages import Citation, ConversationRef
from core.model import ToolCall
from core.threads import ListPosition, NewTurn
from tests.adapters.sql.conftest import ALL_BACKENDS, Clock, Database

SLACK_THREAD = ConversationRef(channel="slack", tenant="T1", conversation="C1", thread="1700.1")
WEB = ConversationRef(channel="web", tenant="local", conversation="w1")


async def count(engine: AsyncEngine, table: Table) -> int:
    async with engine.connect() as conn:
        return (await conn.execute(select(func.count()).select_from(table))).scalar_one()


async def test_get_or_create_returns_the_same_conversation_every_time(
    conversations: SqlConversationStore,
) -> None:
    first = await conversations.get_or_create(SLACK_THREAD, owner=None)
    again = await conversations.get_or_create(SLACK_THREAD, owner=None)

    assert again == first
    assert first.ref == SLACK_THREAD and first.owner is None
    assert len(first.id) == 32
    assert first.created_at.tzinfo is UTC
    assert await conversations.get(first.id) == first


async def test_concurrent_first_messages_create_one_conversation(
    database: Database, engine: AsyncEngine, clock: Clock
) -> None:
    # Two engines: on SQLite they stand for two processes sharing the file.
    stores = [SqlConversationStore(e, now=clock.now) for e in (engine, database.engine())]
    barrier = asyncio.Barrier(20)

    async def first_message(n: int) -> str:
        await barrier.wait()
        return (await stores[n % 2].get_or_create(WEB, owner="web:local:ada")).id

    ids = await asyncio.gather(*(first_message(n) for n in range(20)))

    assert len(set(ids)) == 1
    assert await count(engine, conversations_table) == 1


async def test_a_conversation_without_a_thread_is_one_conversation(
    engine: AsyncEngine, conversations: SqlConversationStore
) -> None:
    unthreaded = await conversations.get_or_create(WEB, owner="web:local:ada")
    empty_thread = ConversationRef(channel="web", tenant="local", conversation="w1", thread="")
    threaded = ConversationRef(channel="web", tenant="local", conversation="w1", thread="t1")

    assert unthreaded.ref.thread is None
    same = await conversations.get_or_create(empty_thread, owner="web:local:ada")
    assert same.id == unthreaded.id
    assert (await conversations.get_or_create(threaded, owner=None)).ref == threaded
    async with engine.connect() as conn:
        stored = (await conn.execute(select(conversations_table.c.thread_id))).scalars().all()
    assert sorted(stored) == ["", "t1"]


async def test_unknown_conversations_are_none(conversations: SqlConversationStore) -> None:
    assert await conversations.get("0" * 32) is None
    assert await conversations.latest(channel="web", owner="nobody") is None


async def test_latest_is_the_owners_most_recently_active_conversation(
    conversations: SqlConversationStore, clock: Clock
) -> None:
    ada = "web:local:ada"
    older = await conversations.get_or_create(WEB, owner=ada)
    clock.advance(timedelta(minutes=1))
    newer = await conversations.get_or_create(
        ConversationRef(channel="web", tenant="local", conversation="w2"), owner=ada
    )
    clock.advance(timedelta(minutes=1))
    await conversations.get_or_create(
        ConversationRef(channel="web", tenant="local", conversation="w3"), owner="web:local:bob"
    )
    await conversations.get_or_create(
        ConversationRef(channel="cli", tenant="local", conversation="c1"), owner=ada
    )
    assert (await conversations.latest(channel="web", owner=ada)) == newer

    clock.advance(timedelta(minutes=1))
    await conversations.add_turns(older.id, [NewTurn(role="user", content="back again")])

    latest = await conversations.latest(channel="web", owner=ada)
    assert latest is not None and latest.id == older.id
    assert latest.updated_at == clock.now()


@pytest.mark.parametrize("backend", ALL_BACKENDS)
async def test_owned_lists_the_owners_conversations_newest_first_in_pages(
    conversations: SqlConversationStore, clock: Clock
) -> None:
    ada = "web:local:ada"
    made = []
    for n in range(5):
        ref = ConversationRef(channel="web", tenant="local", conversation=f"w{n}")
        made.append(await conversations.get_or_create(ref, owner=ada))
        await conversations.add_turns(made[-1].id, [
            NewTurn(role="user", content=f"  question\n {n} " + "x" * 300),
            NewTurn(role="assistant", content="answer"),
            NewTurn(role="user", content="a later one"),
        ])
        clock.advance(timedelta(minutes=1))
    await conversations.get_or_create(WEB, owner="web:local:bob")
    await conversations.get_or_create(
        ConversationRef(channel="cli", tenant="local", conversation="c1"), owner=ada
    )
    untitled = await conversations.get_or_create(
        ConversationRef(channel="web", tenant="local", conversation="empty"), owner=ada
    )
    clock.advance(timedelta(minutes=1))
    await conversations.add_turns(made[1].id, [NewTurn(role="user", content="back again")])

    first = await conversations.owned(channel="web", owner=ada, limit=3)
    last = first[-1]
    rest = await conversations.owned(
        channel="web", owner=ada, limit=10,
        after=ListPosition(updated_at=last.updated_at, id=last.id),
    )

    order = [made[1].id, untitled.id, made[4].id, made[3].id, made[2].id, made[0].id]
    assert [c.id for c in first + rest] == order
    assert first[0].title.startswith("question 1 xxx") and len(first[0].title) <= 200
    assert first[0].updated_at == clock.now()
    assert first[1].title == ""
    assert await conversations.owned(channel="web", owner="web:local:eve", limit=5) == []


async def test_recent_turns_are_the_last_ones_oldest_first(
    conversations: SqlConversationStore,
) -> None:
    conversation = await conversations.get_or_create(WEB, owner="web:local:ada")
    other = await conversations.get_or_create(SLACK_THREAD, owner=None)
    for n in range(5):
        await conversations.add_turns(conversation.id, [NewTurn(role="user", content=f"q{n}")])
        await conversations.add_turns(other.id, [NewTurn(role="user", content=f"other {n}")])

    recent = await conversations.recent_turns(conversation.id, 3)

    assert [t.content for t in recent] == ["q2", "q3", "q4"]
    assert [t.content for t in await conversations.recent_turns(conversation.id, 10)] == [
        f"q{n}" for n in range(5)
    ]


async def test_recent_turns_walk_the_conversation_index_instead_of_sorting(
    engine: AsyncEngine, conversations: SqlConversationStore
) -> None:
    # An old, long thread followed by traffic in many others: given `conversation_id = ?`,
    # PostgreSQL walks the primary key back through every newer turn for this shape.
    long = await conversations.get_or_create(WEB, owner="web:local:ada")
    await conversations.add_turns(long.id, [NewTurn(role="user", content="q")] * 300)
    for n in range(100):
        ref = ConversationRef(channel="slack", tenant="T1", conversation="C1", thread=str(n))
        short = await conversations.get_or_create(ref, owner=None)
        await conversations.add_turns(short.id, [NewTurn(role="user", content="q")] * 30)
    query = recent_turns_query(long.id, 20).compile(
        dialect=engine.dialect, compile_kwargs={"literal_binds": True}
    )

    async with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            await conn.exec_driver_sql("ANALYZE")
            rows = await conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {query}")
            plan = "\n".join(str(row[-1]) for row in rows)
        else:
            await conn.exec_driver_sql("ANALYZE turns")
            plan = "\n".join(row[0] for row in await conn.exec_driver_sql(f"EXPLAIN {query}"))

    assert "ix_turns_conversation_id_id" in plan, plan
    for detour in ("pk_turns", "PRIMARY KEY", "TEMP B-TREE", "Sort"):
        assert detour not in plan, plan


async def test_tool_calls_and_citations_round_trip(conversations: SqlConversationStore) -> None:
    conversation = await conversations.get_or_create(WEB, owner="web:local:ada")
    call = ToolCall(id="call_1", name="search_knowledge", arguments='{"query": "vacation"}')
    citation = Citation(index=1, title="Leave policy", url="https://intra/leave", snippet="25 days")
    batch = [
        NewTurn(role="user", content="How many vacation days?", tokens=7, inbox_item_id=41),
        NewTurn(role="assistant", content="", tool_calls=(call,), inbox_item_id=41),
        NewTurn(role="tool", content="25 days", tool_call_id="call_1", inbox_item_id=41),
        NewTurn(role="assistant", content="25 days [1]", citations=(citation,), inbox_item_id=41),
    ]

    stored = await conversations.add_turns(conversation.id, batch)

    assert [(t.role, t.content, t.tool_calls, t.tool_call_id, t.tokens, t.citations)
            for t in stored] == [
        (n.role, n.content, n.tool_calls, n.tool_call_id, n.tokens, n.citations) for n in batch
    ]
    assert stored == await conversations.recent_turns(conversation.id, 10)
    assert [t.id for t in stored] == sorted(t.id for t in stored)
    assert stored[1].as_message().tool_calls == (call,)


async def test_a_failing_batch_writes_no_turn(
    engine: AsyncEngine, conversations: SqlConversationStore, clock: Clock
) -> None:
    conversation = await conversations.get_or_create(WEB, owner="web:local:ada")
    clock.advance(timedelta(minutes=5))
    broken = NewTurn(role=None, content="no role")  # type: ignore[arg-type]

    with pytest.raises(StorageError):
        await conversations.add_turns(conversation.id, [NewTurn(role="user", content="hi"), broken])

    assert await conversations.recent_turns(conversation.id, 10) == []
    assert await conversations.get(conversation.id) == conversation  # updated_at untouched
    assert await count(engine, turns_table) == 0


async def test_turns_for_a_missing_conversation_are_refused(
    engine: AsyncEngine, conversations: SqlConversationStore
) -> None:
    conversation = await conversations.get_or_create(WEB, owner="web:local:ada")
    await conversations.add_turns(conversation.id, [NewTurn(role="user", content="kept")])

    with pytest.raises(StorageError):
        await conversations.add_turns("f" * 32, [NewTurn(role="user", content="lost")])

    assert await count(engine, turns_table) == 1


async def test_adding_no_turns_is_a_no_op(conversations: SqlConversationStore) -> None:
    conversation = await conversations.get_or_create(WEB, owner="web:local:ada")
    assert await conversations.add_turns(conversation.id, []) == []
