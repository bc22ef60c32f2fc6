"""The sent-message index: a platform message id → the answer it carried."""

from __future__ import annotations

import asyncio

from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.sql.conversations import SqlConversationStore
from adapters.sql.engine import Executor
from adapters.sql.sent_messages import SqlSentMessages
from core.messages import ConversationRef
from tests.adapters.sql.test_slack_storage import answer_in

CHAT = ConversationRef(channel="teams", tenant="tn", conversation="a:1chat")
OTHER = ConversationRef(channel="teams", tenant="tn", conversation="a:2other")


async def test_a_sent_message_finds_its_turn_only_in_its_conversation(
    engine: AsyncEngine, executor: Executor, conversations: SqlConversationStore
) -> None:
    sent = SqlSentMessages(engine, executor)
    turn = await answer_in(conversations, CHAT)

    await sent.remember(CHAT, "1:abc", turn)

    assert await sent.turn_of(CHAT, "1:abc") == turn
    assert await sent.turn_of(OTHER, "1:abc") is None
    assert await sent.turn_of(CHAT, "1:unknown") is None


async def test_remembering_twice_keeps_the_first(
    engine: AsyncEngine, executor: Executor, conversations: SqlConversationStore
) -> None:
    sent = SqlSentMessages(engine, executor)
    first = await answer_in(conversations, CHAT)
    second = await answer_in(conversations, CHAT)

    await asyncio.gather(sent.remember(CHAT, "1:abc", first), sent.remember(CHAT, "1:abc", first))
    await sent.remember(CHAT, "1:abc", second)

    assert await sent.turn_of(CHAT, "1:abc") == first


async def test_a_conversation_reference_is_kept_per_thread_and_replaced(
    engine: AsyncEngine, executor: Executor,
) -> None:
    from adapters.sql.references import SqlConversationReferences

    refs = SqlConversationReferences(engine, executor)
    thread = ConversationRef(channel="teams", tenant="tn", conversation="19:c", thread="17")

    await refs.remember(CHAT, {"serviceUrl": "https://a/"})
    await refs.remember(CHAT, {"serviceUrl": "https://b/"})

    assert await refs.get(CHAT) == {"serviceUrl": "https://b/"}
    assert await refs.get(thread) is None
