"""The Slack channel's stop listeners over real signed HTTP: the Stop button's click and
the agent session's `agent_session_stopped` event reach the Stopper as the verified
clicker; a refusal is told privately; a spent button is removed."""

from __future__ import annotations

import copy
import json
import urllib.parse
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from adapters.slack.app import SlackChannel
from adapters.slack.blocks import STOP_ACTION
from adapters.slack.clients import SlackClients
from adapters.slack.config import SlackConfig
from adapters.slack.http import SLACK_CHANNEL, add_slack_routes
from adapters.slack.sessions import StoppedStreams
from adapters.slack.translate import thread_ref
from adapters.slack.users import SlackUsers
from core.messages import ConversationRef, Sender
from core.stops import (
    NOT_YOURS,
    NOTHING_TO_STOP,
    NotAllowed,
    NothingToStop,
    StopOutcome,
    Stopper,
    Stopping,
)
from tests.e2e.slack.conftest import SECRET, fixture, post_event
from tests.fakes.slack_api import FakeSlack
from tests.fakes.stores import in_memory_stores

TEAM, CHANNEL, ROOT, ASKER = "T111", "C111", "1700000001.000100", "U222"


class RecordingStopper(Stopper):
    """Answers with `outcome` and keeps what it was asked."""

    def __init__(self) -> None:
        stores = in_memory_stores()
        super().__init__(inbox=stores.inbox, conversations=stores.conversations)
        self.outcome: StopOutcome = Stopping(item_id=42)
        self.items: list[tuple[int, Sender]] = []
        self.threads: list[tuple[ConversationRef, Sender]] = []

    async def stop_item(self, item_id: int, by: Sender) -> StopOutcome:
        self.items.append((item_id, by))
        return self.outcome

    async def stop_thread(self, ref: ConversationRef, by: Sender) -> StopOutcome:
        self.threads.append((ref, by))
        return self.outcome


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    async with FakeSlack(team_id=TEAM, bot_user_id="U111", bot_id="B111") as fake:
        fake.add_user(ASKER, name="ada", real_name="Ada Lovelace", email="ada@example.com")
        yield fake


@pytest.fixture
def stopper() -> RecordingStopper:
    return RecordingStopper()


@pytest.fixture
def streams() -> StoppedStreams:
    return StoppedStreams()


@pytest.fixture
async def app(
    slack: FakeSlack, stopper: RecordingStopper, streams: StoppedStreams
) -> AsyncIterator[TestClient[Any, Any]]:
    stores = in_memory_stores()
    async with aiohttp.ClientSession() as session:
        clients = SlackClients(session=session, base_url=slack.base_url, bot_token="xoxb-test")
        channel = SlackChannel(
            config=SlackConfig(signing_secret=SECRET, bot_token="xoxb-test",
                               api_url=slack.base_url),
            clients=clients, users=SlackUsers(), inbox=stores.inbox,
            deliveries=stores.deliveries, feedback=stores.feedback, work_added=lambda: None,
            stopper=stopper, stopped_streams=streams,
        )
        web_app = web.Application()
        add_slack_routes(web_app)
        web_app[SLACK_CHANNEL] = channel
        async with TestServer(web_app, host="127.0.0.1") as server, TestClient(server) as client:
            yield client


def stop_click(*, user: str = ASKER, value: str = "42") -> str:
    """The fixture's block_actions click, on the Stop button in the answer's thread."""
    body = copy.deepcopy(fixture("bolt_block_actions_payload.json"))
    body["user"]["id"] = user
    body["container"].update(message_ts="1700000001.000200", is_ephemeral=False)
    body["message"] = {"type": "message", "ts": "1700000001.000200", "thread_ts": ROOT,
                       "text": "Stop", "user": "U111", "bot_id": "B111"}
    body["actions"][0].update(action_id=STOP_ACTION, block_id="switchboard_stop", value=value)
    return "payload=" + urllib.parse.quote(json.dumps(body))


def session_stopped(*, user: str = ASKER, streams: tuple[str, ...] = ()) -> dict[str, Any]:
    """The fixture's event_callback envelope carrying agent_session_stopped, shaped as
    https://docs.slack.dev/reference/events/agent_session_stopped/ shows it."""
    body = copy.deepcopy(fixture("sdk_socketmode_envelope_events_api_app_mention.json")["payload"])
    body["event"] = {
        "type": "agent_session_stopped", "channel": CHANNEL, "thread_ts": ROOT, "user": user,
        "streaming_message_ts": list(streams), "event_ts": "1700000002.000100",
    }
    body["event_id"] = "EvStop1"
    return body


async def click(app: TestClient[Any, Any], form: str) -> int:
    response = await post_event(app, form, content_type="application/x-www-form-urlencoded")
    return response.status


async def test_a_click_on_stop_stops_the_item_as_the_verified_clicker(
    app: TestClient[Any, Any], stopper: RecordingStopper, slack: FakeSlack
) -> None:
    assert await click(app, stop_click()) == 200

    ((item_id, by),) = stopper.items
    assert item_id == 42
    assert (by.id, by.email) == (f"slack:{TEAM}:{ASKER}", "ada@example.com")
    assert slack.ephemerals == []


async def test_someone_else_is_refused_privately(
    app: TestClient[Any, Any], stopper: RecordingStopper, slack: FakeSlack
) -> None:
    stopper.outcome = NotAllowed()

    assert await click(app, stop_click(user="W999")) == 200

    (refusal,) = slack.ephemerals
    assert (refusal["user"], refusal["text"], refusal["thread_ts"]) == ("W999", NOT_YOURS, ROOT)


async def test_a_click_as_the_answer_ended_is_told_there_is_nothing_left_to_stop(
    app: TestClient[Any, Any], stopper: RecordingStopper, slack: FakeSlack
) -> None:
    """The button is in the answer's own message: nothing is deleted, the clicker is told."""
    stopper.outcome = NothingToStop()

    assert await click(app, stop_click()) == 200

    assert slack.calls_to("chat.delete") == []
    (notice,) = slack.ephemerals
    assert notice["text"] == NOTHING_TO_STOP


@pytest.mark.parametrize("value", ["", "abc", "-1", "42; drop"])
async def test_a_button_value_that_names_no_item_stops_nothing(
    app: TestClient[Any, Any], stopper: RecordingStopper, value: str
) -> None:
    assert await click(app, stop_click(value=value)) == 200

    assert stopper.items == []


async def test_the_session_stop_control_stops_the_thread_and_marks_its_streams(
    app: TestClient[Any, Any], stopper: RecordingStopper, streams: StoppedStreams
) -> None:
    response = await post_event(app, session_stopped(streams=("1700000001.000300",)))

    assert response.status == 200
    ((ref, by),) = stopper.threads
    assert ref == thread_ref(TEAM, CHANNEL, ROOT)
    assert by.id == f"slack:{TEAM}:{ASKER}"
    assert (CHANNEL, "1700000001.000300") in streams


async def test_the_session_stop_control_by_someone_else_is_refused_privately(
    app: TestClient[Any, Any], stopper: RecordingStopper, slack: FakeSlack
) -> None:
    stopper.outcome = NotAllowed()

    assert (await post_event(app, session_stopped(user="W999"))).status == 200

    (refusal,) = slack.ephemerals
    assert (refusal["user"], refusal["text"]) == ("W999", NOT_YOURS)
