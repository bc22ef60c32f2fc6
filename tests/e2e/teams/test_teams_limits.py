"""Teams over the rate limit: one short reply per window, the refused messages never
answered, not even when Teams delivers one again after the window."""

from __future__ import annotations

from sqlalchemy import func, select, text

from adapters.sql.tables import inbox
from core.limits import SLOW_DOWN
from tests.e2e.conftest import services, serving
from tests.e2e.teams.conftest import TeamsSettings, personal, post_activity, settled
from tests.fakes.bot_framework import ChannelIdentity, FakeConnector
from tests.fakes.openai_server import FakeOpenAI, Reply


async def test_a_flood_gets_one_slow_down_reply_and_no_answers(
    teams_settings: TeamsSettings, identity: ChannelIdentity, connector: FakeConnector,
    llm: FakeOpenAI,
) -> None:
    llm.script(Reply("The first answer."), Reply("After the window."))
    async with serving(teams_settings(rate_limit_user="1/minute")) as app:
        first = await post_activity(app, identity, personal(connector, "first", id="1001"))
        assert first.status == 200
        await connector.wait_for_text("The first answer.")

        flood = [await post_activity(app, identity,
                                     personal(connector, f"again {n}", id=f"100{n + 2}"))
                 for n in range(4)]

        assert all(r.status in (200, 201, 202) for r in flood)
        notices = [m for m in connector.messages() if m.text == SLOW_DOWN]
        assert len(notices) == 1

        # The window ends (its counters go); Teams then delivers a refused message again.
        engine = services(app).stores.engine
        async with engine.begin() as conn:
            await conn.execute(text("DELETE FROM rate_limits"))
        again = await post_activity(app, identity, personal(connector, "again 0", id="1002"))
        assert again.status in (200, 201, 202)
        later = await post_activity(app, identity, personal(connector, "later", id="1009"))
        assert later.status in (200, 201, 202)
        await connector.wait_for_text("After the window.")
        await settled(app)

        async with engine.connect() as conn:
            recorded = (await conn.execute(select(func.count()).select_from(inbox))).scalar()
        assert recorded == 2
        assert len(llm.requests) == 2
        assert len([m for m in connector.messages() if m.text == SLOW_DOWN]) == 1
