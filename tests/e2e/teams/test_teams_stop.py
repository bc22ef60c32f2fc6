"""Teams' Stop button on a streaming answer: the answer ends where it was shown, the model
call is abandoned, the stored answer is the partial text marked stopped, and nothing is
sent again — while any other refused stream update still falls back to one message."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient
from sqlalchemy import text

from core.replies import STOPPED_MARK
from tests.e2e.conftest import services
from tests.e2e.teams.conftest import personal, post_activity, settled
from tests.fakes.bot_framework import ChannelIdentity, ConnectorCall, FakeConnector
from tests.fakes.openai_server import FakeOpenAI, Paced


def streamed(call: ConnectorCall) -> bool:
    """A stream update carrying the answer's text (not an informative one)."""
    return any(isinstance(e, dict) and e.get("streamType") == "streaming"
               for e in call.activity.get("entities") or ())


async def stored(app: TestClient[Any, Any]) -> tuple[list[str], str]:
    """The inbox item's status(es) and the last stored answer."""
    async with services(app).stores.engine.connect() as conn:
        statuses = (await conn.execute(text("SELECT status FROM inbox"))).scalars().all()
        answer = (await conn.execute(text(
            "SELECT content FROM turns WHERE role = 'assistant' ORDER BY id DESC LIMIT 1"
        ))).scalar_one()
    return list(statuses), str(answer)


async def test_stop_in_teams_ends_the_answer_where_it_was_shown(
    app: TestClient[Any, Any], identity: ChannelIdentity, connector: FakeConnector,
    llm: FakeOpenAI,
) -> None:
    # A long answer, typed slowly: the person stops it after its first streamed words.
    llm.script(Paced(first_token=0.1, tokens=400, rate=20, text="Here is a long answer"))
    body = personal(connector, "tell me everything")

    await post_activity(app, identity, body)
    await connector.wait_for(streamed, timeout=10)
    [stream_id] = connector.press_stop()
    await llm.wait_for_abandoned(timeout=10)  # the model call ended with the answer
    await settled(app)

    shown = connector.streams[stream_id].streamed_text
    assert shown.startswith("Here is a long answer")
    assert [m.text for m in connector.messages()] == [shown]  # no final, no fallback
    assert not [a for a in connector.activities() if a.get("type") == "message"]
    assert connector.violations == []
    statuses, answer = await stored(app)
    assert statuses == ["done"]
    assert answer.startswith(shown) and answer.endswith(STOPPED_MARK)
    assert len(answer) < len(" lorem") * 400  # the partial text, not the whole answer

    calls = len(connector.calls)
    again = await post_activity(app, identity, body)  # Teams redelivers the same activity
    await settled(app)

    assert again.status == 200
    assert len(connector.calls) == calls and len(llm.requests) == 1


async def test_a_stream_that_ran_out_of_time_still_ends_as_one_message(
    app: TestClient[Any, Any], identity: ChannelIdentity, connector: FakeConnector,
    llm: FakeOpenAI,
) -> None:
    llm.script(Paced(first_token=0.1, tokens=40, rate=20, text="All of it, in the end."))
    connector.script(403, body={"error": {
        "code": "ContentStreamNotAllowed",
        "message": "Content stream finished due to exceeded streaming time.",
    }}, when=streamed)

    await post_activity(app, identity, personal(connector, "hi"))
    message = await connector.wait_for_text("All of it, in the end.", timeout=10)
    await settled(app)

    assert message.stream_id is None and message.activity["type"] == "message"
    assert message.activity["channelData"]["feedbackLoop"] == {"type": "default"}
    assert [m.text for m in connector.messages()] == [message.text]
    statuses, answer = await stored(app)
    assert statuses == ["done"] and not answer.endswith(STOPPED_MARK)
