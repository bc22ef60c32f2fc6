"""Slack over the rate limit: one short ephemeral "slow down" per window, not one per
message of a flood and not silence; the refused messages are never answered, not even
when Slack retries one after the window has ended."""

from __future__ import annotations

from sqlalchemy import func, select, text

from adapters.sql.tables import inbox
from core.limits import SLOW_DOWN
from tests.e2e.conftest import services, serving
from tests.e2e.slack.conftest import (
    ASKER,
    SlackSettings,
    as_message,
    mention,
    post_event,
    settled,
)
from tests.fakes.openai_server import FakeOpenAI, Reply
from tests.fakes.slack_api import FakeSlack


async def test_a_flood_gets_one_slow_down_and_no_answers(
    slack_settings: SlackSettings, slack: FakeSlack, llm: FakeOpenAI
) -> None:
    llm.script(Reply("The first answer."), Reply("After the window."))
    async with serving(slack_settings(rate_limit_user="1/minute")) as app:
        first = await post_event(app, mention("first", ts="1700000000.000100", event_id="Ev1"))
        assert first.status == 200
        await slack.wait_for_text("C111", "1700000000.000100", "The first answer.")

        flood = [
            await post_event(app, mention(f"again {n}", ts=f"1700000001.00010{n}",
                                          event_id=f"Ev{n + 2}"))
            for n in range(4)
        ]

        assert [r.status for r in flood] == [200] * 4
        (notice,) = slack.ephemerals
        assert (notice["user"], notice["channel"], notice["text"]) == (ASKER, "C111", SLOW_DOWN)

        # The window ends (its counters go); Slack then retries a refused delivery.
        engine = services(app).stores.engine
        async with engine.begin() as conn:
            await conn.execute(text("DELETE FROM rate_limits"))
        retried = await post_event(
            app, mention("again 0", ts="1700000001.000100", event_id="Ev2"),
            headers={"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"},
        )
        assert retried.status == 200
        later = await post_event(app, mention("later", ts="1700000002.000100", event_id="Ev9"))
        assert later.status == 200
        await slack.wait_for_text("C111", "1700000002.000100", "After the window.")
        await settled(app)

        async with engine.connect() as conn:
            recorded = (await conn.execute(select(func.count()).select_from(inbox))).scalar()
        assert recorded == 2  # the first and the later message; nothing of the flood
        assert len(llm.requests) == 2 and len(slack.ephemerals) == 1


async def test_a_mention_delivered_twice_counts_once(
    slack_settings: SlackSettings, slack: FakeSlack, llm: FakeOpenAI
) -> None:
    """A mention in a channel the bot reads arrives as app_mention and as a message
    event: one message, counted once, so a limit of 2 lets two such messages through."""
    llm.script(Reply("First."), Reply("Second."))
    async with serving(slack_settings(rate_limit_user="2/minute")) as app:
        for n, words in enumerate(("one", "two"), 1):
            body = mention(words, ts=f"1700000010.00010{n}", event_id=f"EvM{n}")
            assert (await post_event(app, as_message(body, event_id=f"EvC{n}"))).status == 200
            assert (await post_event(app, body)).status == 200
        await slack.wait_for_text("C111", "1700000010.000102", "Second.")
        await settled(app)

        assert slack.ephemerals == [] and len(llm.requests) == 2
