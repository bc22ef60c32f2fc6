"""Stopping `switchboard serve` as a deploy does, and killing it as a crash does.

SIGTERM drains (new work refused with 503 and Retry-After, `/readyz` failing, answers in
progress finished within SWITCHBOARD_SHUTDOWN_GRACE), what is still running after it goes
back to the inbox for the next process, and a second signal stops at once. SIGKILL while
an answer streams, or while its stream is being stopped, leaves one message in the thread
that the next process finishes: never a cut-off one beside a second, never none.

Real processes and signals; Slack and the model are faked in this process."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.e2e.processes import (
    Cluster,
    Processes,
    database,
    inbox_settled,
    killed_mid_answer,
    post_slack,
    serve,
    statuses,
)
from tests.e2e.slack.conftest import mention
from tests.fakes.openai_server import FakeOpenAI, Hang, Reply
from tests.fakes.slack_api import Delay, FakeSlack

pytestmark = pytest.mark.timeout(120)

CHANNEL = "C111"
FIRST, SECOND = "1700000003.000100", "1700000003.000200"
EXITED_WITHIN = 15.0  # seconds after the last signal (a grace of 1 s, or none at all)


async def readyz_until(url: str, status: int) -> dict[str, Any]:
    async with aiohttp.ClientSession() as session:
        for _ in range(200):
            async with session.get(f"{url}/readyz") as response:
                if response.status == status:
                    body: dict[str, Any] = await response.json()
                    return body
            await asyncio.sleep(0.05)
    raise AssertionError(f"/readyz never answered {status}")


async def test_sigterm_finishes_the_answer_in_progress_and_refuses_new_work(
    procs: Processes, slack: FakeSlack, llm: FakeOpenAI, tmp_path: Path
) -> None:
    gate = asyncio.Event()  # the model pauses mid-answer until the test lets it go on
    llm.script(Reply("Finished after the signal.", gate=gate))
    server = await serve(procs, grace=30)
    assert server.url is not None
    assert (await post_slack(server.url, mention("first", ts=FIRST, event_id="Ev1"))).status \
        == 200
    await slack.wait_for("chat.startStream", timeout=20)  # the answer is on screen, unfinished

    server.send(signal.SIGTERM)
    assert await readyz_until(server.url, 503) == {"status": "draining"}
    refused = await post_slack(server.url, mention("second", ts=SECOND, event_id="Ev2"))
    assert refused.status == 503 and int(refused.headers["Retry-After"]) > 0
    assert server.running  # still finishing the first answer

    gate.set()
    await slack.wait_for("chat.stopStream", timeout=20)
    assert await server.wait(EXITED_WITHIN) == 0
    assert [m.text for m in slack.thread(CHANNEL, FIRST)] == ["Finished after the signal."]
    assert slack.thread(CHANNEL, SECOND) == []
    assert await inbox_settled(database(tmp_path)) == {"done": 1}  # the second never recorded
    assert len(llm.requests) == 1
    assert "Traceback" not in server.stderr()


async def test_an_answer_still_running_after_the_grace_goes_back_and_is_answered_once(
    procs: Processes, slack: FakeSlack, llm: FakeOpenAI, tmp_path: Path
) -> None:
    llm.script(Hang(seconds=600))  # the model never starts answering in the first process
    first = await serve(procs, grace=1)
    assert first.url is not None
    await post_slack(first.url, mention("are you there?", ts=FIRST, event_id="Ev1"))
    await llm.wait_for_requests(1, timeout=20)

    first.send(signal.SIGTERM)
    assert await first.wait(EXITED_WITHIN) == 0
    assert "go back to the inbox" in first.stderr()
    assert slack.thread(CHANNEL, FIRST) == []  # nothing cut off on screen
    assert await statuses(database(tmp_path)) == {"pending": 1}

    # The next process (the deploy's new version) answers it, once.
    second = await serve(procs, grace=1)
    await slack.wait_for_text(CHANNEL, FIRST, "echo: are you there?", timeout=20)
    assert await inbox_settled(database(tmp_path)) == {"done": 1}
    assert [m.text for m in slack.thread(CHANNEL, FIRST)] == ["echo: are you there?"]
    assert len(llm.requests) == 2
    await second.stop()


async def test_a_second_signal_stops_at_once(
    procs: Processes, slack: FakeSlack, llm: FakeOpenAI, tmp_path: Path
) -> None:
    llm.script(Hang(seconds=600))
    server = await serve(procs, grace=600)  # a grace that would outlast the test
    assert server.url is not None
    await post_slack(server.url, mention("slow one", ts=FIRST, event_id="Ev1"))
    await llm.wait_for_requests(1, timeout=20)

    server.send(signal.SIGTERM)
    await readyz_until(server.url, 503)
    server.send(signal.SIGINT)
    assert await server.wait(EXITED_WITHIN) == 0
    assert await statuses(database(tmp_path)) == {"pending": 1}  # back for the next process


# ----- killed -----


async def test_killed_mid_stream_the_next_process_finishes_the_same_message(
    procs: Processes, slack: FakeSlack, llm: FakeOpenAI, tmp_path: Path
) -> None:
    noted, gate = await killed_mid_answer(procs, llm, database(tmp_path), ts=FIRST)
    [cut] = slack.thread(CHANNEL, FIRST)
    assert cut.ts == noted and cut.streaming and cut.text == "A fi"

    second = await serve(procs, grace=1)
    assert await inbox_settled(database(tmp_path), timeout=60) == {"done": 1}
    [answer] = slack.thread(CHANNEL, FIRST)  # the same message, finished
    assert answer.ts == cut.ts and not answer.streaming
    assert answer.text == "echo: tell me"
    assert len(llm.requests) == 2  # the model was asked again: nothing had been stored
    assert len(slack.calls_to("chat.startStream")) == 1
    gate.set()
    await second.stop()


async def test_killed_while_the_stream_is_stopped_the_stored_answer_is_delivered_once(
    procs: Processes, slack: FakeSlack, llm: FakeOpenAI, tmp_path: Path
) -> None:
    slack.script("chat.stopStream", Delay(120))  # Slack is slow to end the stream
    first = await serve(procs, grace=1)
    assert first.url is not None
    await post_slack(first.url, mention("hello", ts=FIRST, event_id="Ev1"))
    await slack.wait_for("chat.stopStream", timeout=20)  # the answer is stored by now
    first.kill()
    assert await statuses(database(tmp_path)) == {"answered": 1}

    second = await serve(procs, grace=1)
    assert await inbox_settled(database(tmp_path), timeout=60) == {"done": 1}
    [answer] = slack.thread(CHANNEL, FIRST)
    assert not answer.streaming and answer.text == "echo: hello"
    assert answer.blocks  # sources and feedback, as any finished answer
    assert len(llm.requests) == 1  # delivered from storage, not asked again
    await second.stop()


# ----- PostgreSQL restarted under the server -----


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    try:
        server = Cluster.create()
    except FileNotFoundError as e:
        pytest.skip(str(e))
    except KeyError:
        pytest.skip("running as root with no postgres user to run PostgreSQL as")
    try:
        server.start()
        yield server
    finally:
        server.remove()


async def test_postgresql_restarted_while_serving_refuses_then_resumes_by_itself(
    procs: Processes, slack: FakeSlack, llm: FakeOpenAI, cluster: Cluster
) -> None:
    env = {"DATABASE_URL": cluster.url}
    await procs.run("db-upgrade", "db", "upgrade", env=env)
    server = procs.start("serve", "serve", http=True, env=env)
    await procs.ready(server)
    assert server.url is not None
    assert (await post_slack(server.url, mention("before", ts=FIRST, event_id="Ev1"))).status \
        == 200
    await slack.wait_for_text(CHANNEL, FIRST, "echo: before", timeout=20)

    cluster.stop()
    refused = await post_slack(server.url, mention("during", ts=SECOND, event_id="Ev2"))
    assert refused.status == 503 and int(refused.headers["Retry-After"]) > 0
    await readyz_until(server.url, 503)

    cluster.start()
    for _ in range(100):  # Slack's retries of the refused event, until one is taken
        retried = await post_slack(server.url, mention("during", ts=SECOND, event_id="Ev2"))
        if retried.status == 200:
            break
        await asyncio.sleep(0.2)
    assert retried.status == 200
    await slack.wait_for_text(CHANNEL, SECOND, "echo: during", timeout=20)
    await readyz_until(server.url, 200)
    assert [m.text for m in slack.thread(CHANNEL, FIRST)] == ["echo: before"]
    assert [m.text for m in slack.thread(CHANNEL, SECOND)] == ["echo: during"]
    assert server.running and "Traceback" not in server.stderr()


async def test_after_a_postgresql_restart_answers_still_reach_a_web_process_from_a_worker(
    procs: Processes, slack: FakeSlack, llm: FakeOpenAI, cluster: Cluster
) -> None:
    """The production layout: the worker's answers travel to the waiting web request by
    NOTIFY, and the worker hears of new work by LISTEN. Both connections die with the
    database; both come back with it."""
    env = {"DATABASE_URL": cluster.url}
    await procs.run("db-upgrade", "db", "upgrade", env=env)
    web = procs.start("web", "serve", "--role", "web", http=True, env=env)
    worker = procs.start("worker", "worker", env=env)
    await procs.ready(web)
    assert web.url is not None
    assert await ask(web.url, "before the restart") == (200, "echo: before the restart")

    cluster.stop()
    await readyz_until(web.url, 503)
    cluster.start()
    await readyz_until(web.url, 200)

    assert await ask(web.url, "after the restart") == (200, "echo: after the restart")
    assert (await post_slack(web.url, mention("and Slack", ts=SECOND, event_id="Ev2"))).status \
        == 200
    await slack.wait_for_text(CHANNEL, SECOND, "echo: and Slack", timeout=30)
    assert web.running and worker.running
    assert "listening for PostgreSQL notifications again" in worker.stderr()


async def ask(url: str, question: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as session, session.post(
        f"{url}/api/v1/chat", json={"message": question}
    ) as response:
        body = await response.json()
        return response.status, body.get("reply") or body.get("error", "")
