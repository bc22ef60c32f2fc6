"""What the Slack channel keeps in SQL: delivery ids, feedback, thread lookup, installs."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from slack_sdk.oauth.installation_store.models.installation import Installation
from slack_sdk.oauth.installation_store.sqlalchemy import AsyncSQLAlchemyInstallationStore
from slack_sdk.oauth.state_store.sqlalchemy import AsyncSQLAlchemyOAuthStateStore
from sqlalchemy import MetaData
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.sql.conversations import SqlConversationStore
from adapters.sql.deliveries import SqlDeliveryLog
from adapters.sql.feedback import SqlFeedbackStore
from adapters.sql.tables import slack_bots, slack_installations, slack_oauth_states
from core.feedback import Feedback
from core.messages import ConversationRef
from core.threads import NewTurn
from tests.adapters.sql.conftest import Clock

THREAD = ConversationRef(channel="slack", tenant="T1", conversation="C1", thread="1.000")


async def test_a_delivery_id_is_first_only_once_even_when_raced(
    engine: AsyncEngine, clock: Clock
) -> None:
    log = SqlDeliveryLog(engine, now=clock.now)

    results = await asyncio.gather(*(log.first_delivery("slack", "T1/Ev1") for _ in range(5)))

    assert sorted(results) == [False, False, False, False, True]
    assert await log.first_delivery("slack", "T1/Ev2")
    assert await log.first_delivery("teams", "T1/Ev1")


async def test_old_delivery_ids_are_forgotten(engine: AsyncEngine, clock: Clock) -> None:
    log = SqlDeliveryLog(engine, now=clock.now)
    await log.first_delivery("slack", "old")
    clock.advance(timedelta(days=2))
    await log.first_delivery("slack", "new")

    assert await log.forget_before(clock.now() - timedelta(days=1)) == 1
    assert await log.first_delivery("slack", "old")
    assert not await log.first_delivery("slack", "new")


async def answer_in(conversations: SqlConversationStore, ref: ConversationRef) -> int:
    conv = await conversations.get_or_create(ref, owner=None)
    turns = await conversations.add_turns(
        conv.id, [NewTurn(role="user", content="q"), NewTurn(role="assistant", content="a")]
    )
    return turns[-1].id


async def test_rating_again_changes_the_rating(
    engine: AsyncEngine, conversations: SqlConversationStore
) -> None:
    store = SqlFeedbackStore(engine)
    turn = await answer_in(conversations, THREAD)

    assert await store.record(Feedback(turn_id=turn, rater="slack:T1:U1", rating="up", where=THREAD))
    down = Feedback(turn_id=turn, rater="slack:T1:U1", rating="down", where=THREAD)
    assert await store.record(down)
    assert await store.record(Feedback(turn_id=turn, rater="slack:T1:U2", rating="up", where=THREAD))

    assert await store.ratings(turn) == {"slack:T1:U1": "down", "slack:T1:U2": "up"}
    assert await store.given_by("slack:T1:U1", [turn, turn - 1, 999_999]) == {turn: "down"}
    assert await store.given_by("slack:T1:U3", [turn]) == {}
    assert await store.given_by("slack:T1:U1", []) == {}


async def test_feedback_from_another_thread_or_on_a_question_is_refused(
    engine: AsyncEngine, conversations: SqlConversationStore
) -> None:
    store = SqlFeedbackStore(engine)
    turn = await answer_in(conversations, THREAD)
    elsewhere = ConversationRef(channel="slack", tenant="T1", conversation="C2", thread="1.000")

    assert not await store.record(Feedback(turn_id=turn, rater="u", rating="up", where=elsewhere))
    assert not await store.record(Feedback(turn_id=turn - 1, rater="u", rating="up", where=THREAD))
    assert not await store.record(Feedback(turn_id=999_999, rater="u", rating="up", where=THREAD))
    assert await store.ratings(turn) == {}


async def test_a_thread_is_found_only_once_answered_in(conversations: SqlConversationStore) -> None:
    assert await conversations.find(THREAD) is None

    created = await conversations.get_or_create(THREAD, owner=None)

    assert await conversations.find(THREAD) == created


async def test_slack_installations_round_trip_through_slack_sdk(engine: AsyncEngine) -> None:
    store = AsyncSQLAlchemyInstallationStore("client-1", engine)
    await store.async_save(
        Installation(app_id="A1", team_id="T9", user_id="U1", bot_token="xoxb-t9",
                     bot_id="B1", bot_user_id="UB1", bot_scopes=["chat:write"])
    )

    bot = await store.async_find_bot(enterprise_id=None, team_id="T9")

    assert bot is not None and bot.bot_token == "xoxb-t9"
    states = AsyncSQLAlchemyOAuthStateStore(expiration_seconds=60, engine=engine)
    state = await states.async_issue()
    assert await states.async_consume(state)
    assert not await states.async_consume(state)


def test_slack_tables_match_slack_sdk() -> None:
    """Our migration creates slack_sdk's tables; a library upgrade that changes them fails here."""
    theirs = MetaData()
    expected = [
        AsyncSQLAlchemyInstallationStore.build_installations_table(theirs, "slack_installations"),
        AsyncSQLAlchemyInstallationStore.build_bots_table(theirs, "slack_bots"),
        AsyncSQLAlchemyOAuthStateStore.build_oauth_states_table(theirs, "slack_oauth_states"),
    ]
    for ours, lib in zip([slack_installations, slack_bots, slack_oauth_states], expected, strict=True):
        assert [(c.name, repr(c.type), c.nullable) for c in ours.columns] == [
            (c.name, repr(c.type), c.nullable) for c in lib.columns
        ]
