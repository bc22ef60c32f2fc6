"""The Slack replier while an answer can be stopped: agent sessions (processing, then
active), the Stop button where a workspace refuses sessions, a stopped answer's end,
a stream Slack stopped, thread titles, and the task statuses it streams. Against the
fake Slack Web API over real HTTP."""

from __future__ import annotations

import typing
from collections.abc import AsyncIterator

import aiohttp
import pytest

from adapters.slack.blocks import STOP_ACTION
from adapters.slack.clients import ChannelPacer, SlackClients, Workspace
from adapters.slack.replier import _TASK_STATE, SlackReplier
from adapters.slack.sessions import AgentSessions, StoppedStreams
from adapters.slack.translate import SlackTarget
from core.replies import (
    STOPPED_MARK,
    ReplyDone,
    ReplyFailed,
    Status,
    TextDelta,
    Titled,
    ToolProgress,
)
from tests.fakes.slack_api import TASK_STATUSES, ApiError, FakeSlack

CHANNEL, ROOT, DM = "C111", "1700000001.000100", "D111"


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    async with FakeSlack(team_id="T111", bot_user_id="UBOT", bot_id="BBOT") as fake:
        yield fake


@pytest.fixture
async def clients(slack: FakeSlack) -> AsyncIterator[SlackClients]:
    async with aiohttp.ClientSession() as session:
        yield SlackClients(session=session, base_url=slack.base_url, bot_token="xoxb-test")


def replier(clients: SlackClients, sessions: AgentSessions, *, channel: str = CHANNEL,
            stopped: StoppedStreams | None = None, item_id: int = 7) -> SlackReplier:
    target = SlackTarget(workspace=Workspace(team_id="T111"), channel=channel,
                         thread_ts=ROOT, user="U222", user_team="T111")
    return SlackReplier(target, clients, ChannelPacer(rate=100.0, burst=100), item_id=item_id,
                        sessions=sessions, stopped=stopped)


async def test_the_session_is_processing_while_the_answer_is_written_then_active(
    slack: FakeSlack, clients: SlackClients
) -> None:
    r = replier(clients, AgentSessions())

    await r.send(Status(text="Thinking…"))  # set beside the status, not before it
    await slack.wait_for("agents.sessions.setStatus")
    assert slack.sessions[(CHANNEL, ROOT)] == "processing"
    await r.send(TextDelta(text="Hello"))
    await r.send(ReplyDone(text="Hello", turn_id=3))

    assert slack.sessions[(CHANNEL, ROOT)] == "active"
    (stop,) = slack.calls_to("chat.stopStream")
    assert stop.body["session_status"] == "active"
    first = slack.calls_to("agents.sessions.setStatus")[0]
    assert first.body["initiator_user_id"] == "U222"
    assert [m.text for m in slack.thread(CHANNEL, ROOT)] == ["Hello"]  # no Stop button


async def test_a_failed_answer_also_leaves_processing(
    slack: FakeSlack, clients: SlackClients
) -> None:
    slack.disable_streaming()  # the apology is posted, not streamed
    r = replier(clients, AgentSessions())

    await r.send(Status(text="Thinking…"))
    await r.send(ReplyFailed(text="Sorry, something went wrong.", reference="ref-1"))

    assert slack.sessions[(CHANNEL, ROOT)] == "active"


def buttons(blocks: list[typing.Any]) -> list[dict[str, typing.Any]]:
    return [e for b in blocks if b.get("type") == "actions" for e in b["elements"]
            if e.get("action_id") == STOP_ACTION]


@pytest.mark.parametrize("refusal", ["missing_scope", "unknown_method", "not_allowed"])
async def test_where_sessions_are_refused_the_answer_carries_a_stop_button_while_written(
    slack: FakeSlack, clients: SlackClients, refusal: str
) -> None:
    slack.refuse_agent_sessions(refusal)
    sessions = AgentSessions()
    r = replier(clients, sessions, item_id=42)

    await r.send(Status(text="Thinking…"))
    await r.send(TextDelta(text="Partial"))
    (writing,) = slack.thread(CHANNEL, ROOT)  # the answer's own message: no other
    assert writing.streaming
    assert [(b["value"], b["text"]["text"]) for b in buttons(writing.shown_blocks)] == [
        ("42", "Stop")]
    await r.send(ReplyDone(text="Partial answer", turn_id=3))

    (answer,) = slack.thread(CHANNEL, ROOT)
    assert answer.ts == writing.ts and answer.text == "Partial answer"
    assert buttons(answer.shown_blocks) == []  # gone with the end of the answer
    assert "feedback" in str(answer.shown_blocks)
    # Remembered for the workspace: the next answer does not ask again.
    await replier(clients, sessions, item_id=43).send(Status(text="Thinking…"))
    assert len(slack.calls_to("agents.sessions.setStatus")) == 1


async def test_without_streaming_the_posted_answer_carries_the_button_until_its_end(
    slack: FakeSlack, clients: SlackClients
) -> None:
    slack.refuse_agent_sessions("not_allowed")
    slack.disable_streaming()
    r = replier(clients, AgentSessions(), item_id=42)

    await r.send(Status(text="Thinking…"))
    await r.send(TextDelta(text="Partial"))
    (writing,) = slack.thread(CHANNEL, ROOT)
    assert [b["value"] for b in buttons(writing.shown_blocks)] == ["42"]
    await r.send(ReplyDone(text=f"Partial\n\n{STOPPED_MARK}", turn_id=3, stopped=True,
                           feedback=False))

    (answer,) = slack.thread(CHANNEL, ROOT)
    assert answer.text.endswith("_Stopped._") and buttons(answer.shown_blocks) == []


async def test_sessions_without_the_stop_event_subscription_get_the_button_too(
    slack: FakeSlack, clients: SlackClients
) -> None:
    slack.refuse_agent_sessions(None, warning="missing_agent_session_stopped_event_subscription")
    r = replier(clients, AgentSessions())

    await r.send(Status(text="Thinking…"))
    await r.send(TextDelta(text="Partial"))

    (writing,) = slack.thread(CHANNEL, ROOT)
    assert [b["value"] for b in buttons(writing.shown_blocks)] == ["7"]


async def test_a_passing_failure_is_not_remembered(
    slack: FakeSlack, clients: SlackClients
) -> None:
    slack.script("agents.sessions.setStatus", ApiError("internal_error"))
    sessions = AgentSessions()

    r = replier(clients, sessions)
    await r.send(Status(text="Thinking…"))
    await r.send(ReplyDone(text="Hello", turn_id=3))  # (the session's answer is known by then)

    assert not sessions.refused("T111")


async def test_a_stopped_answer_ends_with_the_mark_and_no_feedback(
    slack: FakeSlack, clients: SlackClients
) -> None:
    r = replier(clients, AgentSessions())
    await r.send(TextDelta(text="The first half"))

    await r.send(ReplyDone(text=f"The first half\n\n{STOPPED_MARK}", turn_id=3,
                           feedback=False, stopped=True))

    (reply,) = slack.thread(CHANNEL, ROOT)
    assert reply.text.endswith(STOPPED_MARK) and reply.state == "stopped"
    assert "feedback_buttons" not in str(reply.blocks)
    assert slack.sessions[(CHANNEL, ROOT)] == "active"


async def test_a_stopped_answer_is_never_rated_even_if_told_otherwise(
    slack: FakeSlack, clients: SlackClients
) -> None:
    r = replier(clients, AgentSessions())

    await r.send(ReplyDone(text=f"x\n\n{STOPPED_MARK}", turn_id=3, stopped=True))

    assert slack.calls_to("chat.stopStream")[0].body.get("blocks") is None


async def test_a_stream_slack_stopped_is_finished_by_update_not_a_second_message(
    slack: FakeSlack, clients: SlackClients
) -> None:
    stopped = StoppedStreams()
    r = replier(clients, AgentSessions(), stopped=stopped)
    await r.send(TextDelta(text="Writing"))
    for ts in slack.press_session_stop(CHANNEL, ROOT):  # what agent_session_stopped lists
        stopped.add(CHANNEL, ts)

    await r.send(TextDelta(text=" more" * 100))
    await r.send(ReplyDone(text=f"Writing more\n\n{STOPPED_MARK}", feedback=False, stopped=True))

    (reply,) = slack.thread(CHANNEL, ROOT)
    assert reply.text == f"Writing more\n\n{STOPPED_MARK}"
    assert slack.calls_to("chat.appendStream") == []  # nothing more went into the stream
    assert slack.calls_to("chat.postMessage") == []
    assert slack.sessions[(CHANNEL, ROOT)] == "active"  # Slack leaves that to the app


async def test_a_stream_stopped_elsewhere_ends_the_same_way(
    slack: FakeSlack, clients: SlackClients
) -> None:
    """A worker in another process did not hear the event: the append fails, and the
    answer still ends in the same message."""
    r = replier(clients, AgentSessions())
    await r.send(TextDelta(text="Writing"))
    slack.press_session_stop(CHANNEL, ROOT)

    await r.send(TextDelta(text=" more" * 100))
    await r.send(ReplyDone(text=f"Writing more\n\n{STOPPED_MARK}", feedback=False, stopped=True))

    (reply,) = slack.thread(CHANNEL, ROOT)
    assert reply.text.endswith(STOPPED_MARK)


async def test_the_title_names_the_agent_session(
    slack: FakeSlack, clients: SlackClients
) -> None:
    r = replier(clients, AgentSessions())
    await r.send(Status(text="Thinking…"))

    await r.send(Titled(title="Resetting a VPN password"))
    await r.send(ReplyDone(text="Use the portal.", turn_id=3))

    assert slack.titles[(CHANNEL, ROOT)] == "Resetting a VPN password"
    assert slack.calls_to("assistant.threads.setTitle") == []
    # Named once the answer is out: the title never holds the answer up.
    (rename,) = slack.calls_to("agents.sessions.rename")
    assert slack.calls_to("chat.stopStream")[0].at < rename.at


async def test_without_sessions_a_direct_message_thread_gets_the_assistant_title(
    slack: FakeSlack, clients: SlackClients
) -> None:
    slack.refuse_agent_sessions("not_allowed")
    r = replier(clients, AgentSessions(), channel=DM)
    await r.send(Status(text="Thinking…"))

    await r.send(Titled(title="Resetting a VPN password"))
    await r.send(ReplyDone(text="Use the portal.", turn_id=3))

    assert slack.titles[(DM, ROOT)] == "Resetting a VPN password"


async def test_a_title_that_fails_is_not_fatal(
    slack: FakeSlack, clients: SlackClients
) -> None:
    slack.script("agents.sessions.rename", ApiError("internal_error"))
    r = replier(clients, AgentSessions())
    await r.send(Status(text="Thinking…"))

    await r.send(Titled(title="x"))
    await r.send(ReplyDone(text="answer"))

    assert [m.text for m in slack.thread(CHANNEL, ROOT)] == ["answer"]


def test_every_tool_state_maps_to_a_task_status_slack_accepts() -> None:
    states = typing.get_args(typing.get_type_hints(ToolProgress)["state"])
    assert set(_TASK_STATE) == set(states)
    assert set(_TASK_STATE.values()) <= TASK_STATUSES
    assert "completed" not in _TASK_STATE.values()


async def test_streamed_tool_cards_are_tasks_only_with_accepted_statuses(
    slack: FakeSlack, clients: SlackClients
) -> None:
    r = replier(clients, AgentSessions())
    for state in ("running", "done"):
        await r.send(ToolProgress(call_id="c1", tool="search", title="Searching", state=state))
    await r.send(ToolProgress(call_id="c2", tool="fetch", title="Fetching", state="failed"))
    await r.send(TextDelta(text="Found it"))
    await r.send(ToolProgress(call_id="c3", tool="search", title="Again", state="running"))
    await r.send(ReplyDone(text="Found it"))

    (reply,) = slack.thread(CHANNEL, ROOT)
    assert reply.state == "stopped"  # the fake refuses other statuses and mixed cards
    assert {c["type"] for c in reply.chunks} == {"task_update"}
    assert {c["status"] for c in reply.chunks} <= TASK_STATUSES
