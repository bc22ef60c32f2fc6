"""SIGKILL at each stage of an answer, then a restart: every message is answered exactly
once, in its own thread, and nothing cut off or stuck is left on screen.

The stages (test_shutdown.py has "model streaming" and "stream stopping / answer stored"):
recorded (acknowledged by a web process, no worker yet), claimed (the model asked,
nothing shown but the status), stream open (a Slack stream started, Slack slow to take
the next piece), tool ran (a ticket opened, the model not done), and in Teams a 1:1 answer killed mid-stream and a channel answer killed
while it is being posted (its second part in flight, the first already on screen).

Real processes and SIGKILL; Slack, Teams (connector, channel keys, Azure AD) and the model
are faked in this process. Nothing waits on the clock: each kill comes once the fakes
have seen the call that marks the stage, and what is asserted is what they recorded."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import text

from adapters.sql.engine import create_engine
from tests.e2e.processes import (
    Processes,
    database,
    inbox_settled,
    killed_mid_answer,
    post_slack,
    post_teams,
    reply_noted,
    serve,
    statuses,
    teams_env,
)
from tests.e2e.slack.conftest import mention
from tests.e2e.teams.conftest import channel_mention, personal
from tests.fakes.bot_framework import ChannelIdentity, FakeConnector, FakeLogin
from tests.fakes.openai_server import CallTools, Fail, FakeOpenAI, Hang, Reply
from tests.fakes.slack_api import Delay, FakeSlack

pytestmark = pytest.mark.timeout(150)

CHANNEL = "C111"
ROOT = "1700000005.000100"
SETTLED_WITHIN = 60.0  # seconds: a killed turn waits out its 3 s lease, on a small machine


def chat_completions(llm: FakeOpenAI) -> int:
    return sum(1 for r in llm.requests if r.path.endswith("/chat/completions"))


# ----- Slack -----


async def test_killed_after_recording_before_any_worker_the_next_process_answers_it_once(
    procs: Processes, slack: FakeSlack, llm: FakeOpenAI, tmp_path: Path
) -> None:
    web = procs.start("web", "serve", "--role", "web", http=True)  # no worker at all
    await procs.ready(web)
    assert web.url is not None
    response = await post_slack(web.url, mention("recorded only", ts=ROOT, event_id="Ev1"))
    assert response.status == 200
    assert await statuses(database(tmp_path)) == {"pending": 1}  # recorded before the ack
    web.kill()
    assert slack.thread(CHANNEL, ROOT) == []
    assert chat_completions(llm) == 0

    server = await serve(procs, grace=1)
    assert await inbox_settled(database(tmp_path), timeout=SETTLED_WITHIN) == {"done": 1}
    [answer] = slack.thread(CHANNEL, ROOT)
    assert (answer.text, answer.state, answer.thread_ts) == ("echo: recorded only", "stopped",
                                                            ROOT)
    assert chat_completions(llm) == 1
    assert len(slack.calls_to("chat.startStream")) == 1
    await server.stop()


async def test_killed_once_claimed_and_the_model_asked_leaves_no_message_and_no_stuck_status(
    procs: Processes, slack: FakeSlack, llm: FakeOpenAI, tmp_path: Path
) -> None:
    llm.script(Hang(seconds=600))  # the first process's model never says a word
    first = await serve(procs, grace=1)
    assert first.url is not None
    await post_slack(first.url, mention("still thinking?", ts=ROOT, event_id="Ev1"))
    await llm.wait_for_requests(1, timeout=20)
    # The status ("Thinking…") goes out 0.1 s into a turn with nothing to show yet.
    [thinking] = await slack.wait_for("assistant.threads.setStatus", timeout=20)
    assert thinking.body["thread_ts"] == ROOT
    first.kill()
    assert await statuses(database(tmp_path)) == {"processing": 1}  # claimed, under lease
    assert slack.thread(CHANNEL, ROOT) == []  # nothing but the status was shown

    second = await serve(procs, grace=1)
    assert await inbox_settled(database(tmp_path), timeout=SETTLED_WITHIN) == {"done": 1}
    [answer] = slack.thread(CHANNEL, ROOT)
    assert (answer.text, answer.state) == ("echo: still thinking?", "stopped")
    assert chat_completions(llm) == 2  # the hung attempt, then the answer
    # Slack clears an assistant thread's status when the app replies in the thread (the
    # product never clears it itself): every status must come before that reply, or the
    # status would stay "is working on it…" under a finished answer.
    methods = [c.method for c in slack.calls
               if c.method in ("assistant.threads.setStatus", "chat.startStream",
                               "chat.postMessage")]
    reply_at = methods.index("chat.startStream")
    assert "assistant.threads.setStatus" not in methods[reply_at:], methods
    assert methods.count("chat.startStream") == 1 and "chat.postMessage" not in methods
    await second.stop()


async def test_killed_with_the_stream_open_the_next_process_finishes_the_same_message(
    procs: Processes, slack: FakeSlack, llm: FakeOpenAI, tmp_path: Path
) -> None:
    """The stream is started with the answer's first piece (`chat.startStream` carries
    text: there is no empty stream), the next pieces go by `chat.appendStream` once 200
    characters or 0.25 s have gathered; Slack never answers that append here."""
    slack.script("chat.appendStream", Delay(120))
    llm.script(Reply("The first attempt, streamed into an open stream. " * 10))
    first = await serve(procs, grace=1)
    assert first.url is not None
    await post_slack(first.url, mention("keep it open", ts=ROOT, event_id="Ev1"))
    [append] = await slack.wait_for("chat.appendStream", timeout=20)
    [start] = slack.calls_to("chat.startStream")
    assert [c["text"] for c in start.body["chunks"]] == ["The "]  # the first piece
    noted = await reply_noted(database(tmp_path))
    first.kill()
    [cut] = slack.thread(CHANNEL, ROOT)
    assert (cut.ts, cut.text, cut.state) == (noted, "The ", "streaming")
    assert append.body["ts"] == noted
    assert await statuses(database(tmp_path)) == {"processing": 1}  # nothing stored yet

    llm.script(Hang(seconds=1, then=Reply("echo: keep it open")))  # long enough for a status
    second = await serve(procs, grace=1)
    assert await inbox_settled(database(tmp_path), timeout=SETTLED_WITHIN) == {"done": 1}
    [answer] = slack.thread(CHANNEL, ROOT)  # the same message, finished
    assert answer.ts == cut.ts and answer.state == "stopped"
    assert answer.text == "echo: keep it open"
    assert answer.blocks  # sources and feedback, as any finished answer
    assert len(slack.calls_to("chat.startStream")) == 1
    assert len(slack.calls_to("chat.appendStream")) == 1  # only the dead process's
    assert chat_completions(llm) == 2  # nothing had been stored: asked again
    # Editing a message is no reply, which would clear the status: cleared at the end.
    order = [(c.method, c.body.get("status")) for c in slack.calls
             if c.method in ("assistant.threads.setStatus", "chat.update")]
    assert order[-2:] == [("chat.update", None), ("assistant.threads.setStatus", "")]
    await second.stop()


async def test_a_retry_that_fails_too_apologises_in_the_message_left_not_beside_it(
    procs: Processes, slack: FakeSlack, llm: FakeOpenAI, tmp_path: Path
) -> None:
    noted, gate = await killed_mid_answer(procs, llm, database(tmp_path), ts=ROOT)

    llm.script(Fail(status=500))  # and the model is down when the next process asks
    second = await serve(procs, grace=1, env={"SWITCHBOARD_MODEL_RETRIES": "0"})
    assert await inbox_settled(database(tmp_path), timeout=SETTLED_WITHIN) == {"failed": 1}
    [shown] = slack.thread(CHANNEL, ROOT)
    assert shown.ts == noted and shown.state == "stopped"
    assert "couldn't reach the language model" in shown.text
    assert "A fi" not in shown.text  # the first attempt's words are not this one's
    gate.set()
    await second.stop()


async def test_killed_after_a_tool_ran_the_retry_goes_on_from_it_and_never_runs_it_again(
    procs: Processes, slack: FakeSlack, llm: FakeOpenAI, tmp_path: Path
) -> None:
    """The tool stage: the model opened a ticket, then stalls; the retry is given that
    round (the call and its result) and answers from it, without opening another."""
    opening = CallTools(calls=[("create_ticket", {"title": "VPN is down",
                                                  "description": "Since this morning."})])
    llm.script(opening, Hang(seconds=600))
    first = await serve(procs, grace=1)
    assert first.url is not None
    await post_slack(first.url, mention("open a ticket: VPN is down", ts=ROOT, event_id="Ev1"))
    await llm.wait_for_requests(2, timeout=20)  # the tool ran, its round is stored
    first.kill()
    assert await tickets(database(tmp_path)) == ["VPN is down"]

    llm.script(Reply("Opened TCK-1 for you."))
    second = await serve(procs, grace=1)
    assert await inbox_settled(database(tmp_path), timeout=SETTLED_WITHIN) == {"done": 1}
    [answer] = slack.thread(CHANNEL, ROOT)
    assert (answer.text, answer.state) == ("Opened TCK-1 for you.", "stopped")
    assert await tickets(database(tmp_path)) == ["VPN is down"]  # opened once
    retry = llm.requests[-1].json["messages"]
    assert [m["role"] for m in retry[-3:]] == ["user", "assistant", "tool"]
    assert retry[-2]["tool_calls"][0]["function"]["name"] == "create_ticket"
    assert retry[-1]["content"].startswith("Opened TCK-")
    await second.stop()


async def tickets(url: str) -> list[str]:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            return list((await conn.execute(text("SELECT title FROM tickets"))).scalars())
    finally:
        await engine.dispose()


# ----- Teams -----


async def test_teams_killed_mid_stream_in_a_personal_chat_the_next_process_finishes_that_stream(
    procs: Processes, connector: FakeConnector, identity: ChannelIdentity, login: FakeLogin,
    llm: FakeOpenAI, tmp_path: Path,
) -> None:
    teams = teams_env(identity, login)
    gate = asyncio.Event()  # never set while the first process lives
    llm.script(Reply("A first attempt that never ends", gate=gate))
    first = await serve(procs, grace=1, env=teams)
    assert first.url is not None
    activity = personal(connector, "are you streaming?")
    assert await post_teams(first.url, identity, activity) == 200
    await llm.wait_for_requests(1, timeout=20)
    noted = await reply_noted(database(tmp_path))  # the stream exists and is noted
    first.kill()
    [opened] = connector.streams.values()
    assert noted == f"stream:{opened.id}" and not opened.finished
    assert connector.messages() == []  # an open stream is not a message yet

    second = await serve(procs, grace=1, env=teams)
    assert await inbox_settled(database(tmp_path), timeout=SETTLED_WITHIN) == {"done": 1}
    assert list(connector.streams) == [opened.id]  # no second stream
    assert opened.finished
    [answer] = connector.messages()
    assert answer.stream_id == opened.id and answer.text == "echo: are you streaming?"
    assert answer.reply_to_id == activity["id"]
    assert connector.violations == []
    assert chat_completions(llm) == 2
    gate.set()
    await second.stop()


async def test_teams_killed_while_a_channel_answer_is_posted_the_rest_follows_and_nothing_twice(
    procs: Processes, connector: FakeConnector, identity: ChannelIdentity, login: FakeLogin,
    llm: FakeOpenAI, tmp_path: Path,
) -> None:
    """A channel answer longer than one Teams message goes out in two: the first is
    posted (and its id noted), the second is in flight when the process dies, never
    reaching Teams. The next process delivers the stored answer: the first message
    replaced in place, the second posted, each once; the model is not asked again."""
    teams = teams_env(identity, login)
    head, tail = "alpha " * 2000, "omega " * 500  # 12,000 and 3,000 characters
    llm.script(Reply(f"{head.strip()}\n\n{tail.strip()}", chunk_size=1000))
    second_part = connector.hold(lambda call: call.activity.get("type") == "message"
                                 and call.text.startswith("omega"))
    first = await serve(procs, grace=1, env=teams)
    assert first.url is not None
    activity = channel_mention(connector, "a long answer please")
    assert await post_teams(first.url, identity, activity) == 200
    await asyncio.wait_for(second_part.arrived.wait(), timeout=30)
    first.kill()
    [shown] = connector.messages()
    assert shown.text == head.strip()
    assert await statuses(database(tmp_path)) == {"answered": 1}  # stored, not delivered
    assert await reply_noted(database(tmp_path)) == f"message:{shown.id}"

    second = await serve(procs, grace=1, env=teams)
    assert await inbox_settled(database(tmp_path), timeout=SETTLED_WITHIN) == {"done": 1}
    assert [(m.id, m.text) for m in connector.messages()] == [
        (shown.id, head.strip()), (connector.messages()[1].id, tail.strip())]
    updates = connector.calls_to("update")
    assert [u.activity_id for u in updates] == [shown.id]  # the first replaced in place
    posted = [c for c in connector.calls_to("send", "reply")
              if c.activity.get("type") == "message"]
    assert [c.text[:5] for c in posted] == ["alpha", "omega"]  # the held one never arrived
    assert chat_completions(llm) == 1  # delivered from storage
    assert connector.violations == []
    await second.stop()
