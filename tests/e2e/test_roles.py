"""The production layout as real processes: `switchboard serve --role web` receives and
acknowledges, `switchboard worker` answers, on one database (SQLite, and PostgreSQL when it
is reachable), the two signalling each other for real (Unix sockets next to SQLite,
LISTEN/NOTIFY on PostgreSQL).

Slack and Teams are configured in both processes against fakes served from this test
process (the Slack Web API, the Bot Framework's OpenID keys, Azure AD and Bot Connector),
and the worker's model is the fake OpenAI server. The web process has no model configured
at all: every echo seen here was produced in the worker process.

Each test starts its processes afresh (~2 s each); the module takes ~30 s.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import make_url, text

from adapters.sql.engine import create_engine
from tests.conftest import POSTGRES_URL
from tests.e2e.conftest import read_events
from tests.e2e.processes import Child, Processes, inbox_settled, post_teams, teams_env
from tests.e2e.slack.conftest import BOT_TOKEN, SECRET, mention, sign
from tests.e2e.teams.conftest import channel_mention, personal
from tests.fakes.bot_framework import ChannelIdentity, FakeConnector, FakeLogin
from tests.fakes.openai_server import FakeOpenAI, Hang, Paced, Reply
from tests.fakes.qdrant_server import FakeQdrant
from tests.fakes.slack_api import FakeSlack, Message

pytestmark = pytest.mark.timeout(150)

CHANNEL = "C111"
ANSWERED_WITHIN = 30.0  # seconds: generous, the processes are real and the machine small
STOPPED_WITHIN = 15.0
SHORT_LEASE = 3  # SWITCHBOARD_LEASE_SECONDS' minimum: a crashed turn is retried ~3 s later
SIGTERM_EXIT = (0, -signal.SIGTERM)


# ----- the database ---------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def database(
    request: pytest.FixtureRequest, tmp_path: Path, postgres_unreachable: str | None
) -> AsyncIterator[str | None]:
    """None for SQLite under DATA_DIR; else the URL of a fresh PostgreSQL database (dropped
    afterwards), in the plain `postgresql://` form an operator would write."""
    if request.param == "sqlite":
        yield None
        return
    if postgres_unreachable:
        pytest.skip(postgres_unreachable)
    name = f"sb_roles_{uuid.uuid4().hex[:12]}"
    admin = create_engine(POSTGRES_URL).execution_options(isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        await conn.exec_driver_sql(f"CREATE DATABASE {name}")
    try:
        url = make_url(POSTGRES_URL).set(drivername="postgresql", database=name)
        yield url.render_as_string(hide_password=False)
    finally:
        async with admin.connect() as conn:
            await conn.exec_driver_sql(f"DROP DATABASE {name} WITH (FORCE)")
        await admin.dispose()


# ----- the processes --------------------------------------------------------------------------


@dataclass
class Deployment:
    """`serve --role web` and `worker` on one database, configured against the fakes."""

    procs: Processes
    database_url: str  # for this process to look at the inbox
    worker_env: dict[str, str]
    web: Child | None = None
    worker: Child | None = None

    @property
    def url(self) -> str:
        assert self.web is not None and self.web.url is not None
        return self.web.url

    def start_worker(self, **env: str) -> Child:
        self.worker = self.procs.start("worker", "worker", env={**self.worker_env, **env})
        return self.worker

    async def start(self, **env: str) -> None:
        """The web process and a worker; returns once the web process is ready."""
        self.web = self.procs.start("web", "serve", "--role", "web", env=env, http=True)
        self.start_worker(**env)
        await self.procs.ready(self.web)

    async def settled(self) -> dict[str, int]:
        self.procs.check_running()
        return await inbox_settled(self.database_url)


@pytest.fixture
async def deployment(
    tmp_path: Path, database: str | None, slack: FakeSlack, identity: ChannelIdentity,
    login: FakeLogin, llm: FakeOpenAI,
) -> AsyncIterator[Deployment]:
    """Nothing started yet (a test may add settings); every child is stopped afterwards,
    and the tail of each one's stderr printed (pytest shows it when the test failed)."""
    data_dir = tmp_path / "data"
    env = {
        "DATA_DIR": str(data_dir),
        "SWITCHBOARD_BUNDLED_DOCS": "false",
        "SWITCHBOARD_LOG_LEVEL": "INFO",
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_SIGNING_SECRET": SECRET,
        "SLACK_API_URL": slack.base_url,
        **teams_env(identity, login),
    }
    if database is not None:
        env["DATABASE_URL"] = database
    # Only the worker has a model: the web process must never answer.
    worker_env = {
        "OPENAI_BASE_URL": llm.base_url,
        "OPENAI_API_KEY": "sk-test-0123456789",
        "SWITCHBOARD_MODEL": "fake-model",
        "SWITCHBOARD_MODEL_RETRIES": "0",
    }
    procs = Processes(tmp_path / "processes", env)
    url = database or f"sqlite+aiosqlite:///{data_dir / 'switchboard.db'}"
    try:
        if database is not None:
            await procs.run("db-upgrade", "db", "upgrade")
        yield Deployment(procs, url, worker_env)
    finally:
        procs.close()
        print(procs.report())
        left = [child.describe() for child in procs.children if child.running]
        assert not left, f"still running: {left}"


# ----- requests to the web process ------------------------------------------------------------


async def post_slack(
    url: str, body: dict[str, Any], headers: dict[str, str] | None = None
) -> int:
    raw = json.dumps(body)
    async with aiohttp.ClientSession() as session, session.post(
        f"{url}/slack/events", data=raw.encode(),
        headers={"Content-Type": "application/json", **sign(raw), **(headers or {})},
    ) as response:
        await response.read()
        return response.status


async def chat(url: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as session, session.post(
        f"{url}/api/v1/chat", json=body
    ) as response:
        return response.status, await response.json()


async def chat_stream(url: str, body: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    async with aiohttp.ClientSession() as session, session.post(
        f"{url}/api/v1/chat/stream", json=body
    ) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/event-stream")
        return await read_events(response)


def asked(llm: FakeOpenAI, question: str) -> int:
    """How many chat completions the model was asked with `question` as the last user turn."""
    def last_user(request: Any) -> str | None:
        messages = (request.json or {}).get("messages") or []
        users = [m.get("content") for m in messages if m.get("role") == "user"]
        return users[-1] if users else None

    return sum(1 for r in llm.requests
               if r.path.endswith("/chat/completions") and last_user(r) == question)


def is_echo(text: str, question: str) -> bool:
    """The fake model's answer to `question`: its echo, then (paced) filler words."""
    return text == f"echo: {question}" or text.startswith(f"echo: {question} ")


def final_answers(slack: FakeSlack, thread_ts: str) -> list[Message]:
    return [m for m in slack.thread(CHANNEL, thread_ts) if m.state in ("stopped", "posted")]


# ----- the tests ------------------------------------------------------------------------------


async def test_web_receives_and_the_worker_answers_each_once_then_both_stop_on_sigterm(
    deployment: Deployment, slack: FakeSlack, identity: ChannelIdentity,
    connector: FakeConnector, llm: FakeOpenAI, record_property: Any,
) -> None:
    await deployment.start()
    url = deployment.url

    # 1. Slack: acknowledged by the web process, answered in its thread by the worker.
    root = "1700000001.000100"
    slack_event = mention("what is the capital of France?", ts=root, event_id="EvRoles1")
    assert await post_slack(url, slack_event) == 200
    await slack.wait_for("chat.stopStream", timeout=ANSWERED_WITHIN)
    [answer] = final_answers(slack, root)
    assert answer.text == "echo: what is the capital of France?"
    assert answer.thread_ts == root and answer.state == "stopped"

    # 2. Teams: a channel mention, answered in its thread through the connector.
    activity = channel_mention(connector, "where is the fire exit?")
    assert await post_teams(url, identity, activity) == 200
    reply = await connector.wait_for_text("echo: where is the fire exit?",
                                          timeout=ANSWERED_WITHIN)
    assert reply.reply_to_id == activity["id"]
    assert reply.conversation_id == activity["conversation"]["id"]

    # 3. Web chat: the worker's answer streams back to the web process's request…
    events = await chat_stream(url, {"message": "stream it please"})
    names = [name for name, _ in events]
    assert names[0] == "start" and names[-1] == "done", names
    assert {"status", "delta"} & set(names[1:-1]), names
    assert events[-1][1]["reply"] == "echo: stream it please"
    assert events[-1][1]["conversation_id"] == events[0][1]["conversation_id"]
    # …and as JSON; asked again with the same message id, the stored answer, not a new one.
    request = {"message": "answer me once", "message_id": "roles-json-1"}
    status, first = await chat(url, request)
    assert (status, first["reply"]) == (200, "echo: answer me once")
    status, again = await chat(url, request)
    assert status == 200
    assert (again["reply"], again["conversation_id"], again["message_id"]) == \
        (first["reply"], first["conversation_id"], "roles-json-1")
    assert asked(llm, "answer me once") == 1

    # 4. Redelivery: Slack's retry and Teams' second delivery are acknowledged, not answered.
    assert await post_slack(url, slack_event, headers={"X-Slack-Retry-Num": "1",
                                                       "X-Slack-Retry-Reason": "http_timeout"}) \
        == 200
    assert await post_teams(url, identity, activity) == 200
    # A later message is answered: the worker is alive and has seen everything before it.
    later = "1700000001.000900"
    assert await post_slack(url, mention("still there?", ts=later, event_id="EvRoles2")) == 200
    await slack.wait_for("chat.stopStream", count=2, timeout=ANSWERED_WITHIN)
    counts = await deployment.settled()
    assert counts.get("failed", 0) == 0, counts
    assert [m.text for m in final_answers(slack, root)] == ["echo: what is the capital of France?"]
    assert [m.text for m in final_answers(slack, later)] == ["echo: still there?"]
    assert len(slack.calls_to("chat.startStream")) == 2
    assert [m.text for m in connector.messages()] == ["echo: where is the fire exit?"]
    assert asked(llm, "what is the capital of France?") == 1
    assert asked(llm, "where is the fire exit?") == 1

    # 5. Both stop on SIGTERM (the worker first, as a deploy would).
    assert deployment.worker is not None and deployment.web is not None
    worker_exit = await deployment.worker.stop(STOPPED_WITHIN)
    web_exit = await deployment.web.stop(STOPPED_WITHIN)
    record_property("worker_sigterm_exit", worker_exit)
    record_property("web_sigterm_exit", web_exit)
    print(f"exit codes on SIGTERM: worker {worker_exit}, web {web_exit}", file=sys.stderr)
    assert worker_exit in SIGTERM_EXIT, deployment.worker.tail()
    assert web_exit in SIGTERM_EXIT, deployment.web.tail()
    assert "Traceback" not in deployment.worker.stderr() + deployment.web.stderr()


async def test_a_crash_between_begin_turn_and_finish_turn_is_answered_once_after_restart(
    deployment: Deployment, slack: FakeSlack, llm: FakeOpenAI,
) -> None:
    llm.script(Hang(seconds=600))  # the first worker's turn never gets its answer
    await deployment.start(SWITCHBOARD_LEASE_SECONDS=str(SHORT_LEASE))
    root = "1700000003.000100"

    assert await post_slack(deployment.url, mention("survive a crash?", ts=root)) == 200
    await llm.wait_for_requests(1, timeout=ANSWERED_WITHIN)  # the turn has begun
    assert deployment.worker is not None
    assert deployment.worker.kill() == -signal.SIGKILL

    # A new worker takes the item over once the dead one's lease has expired.
    deployment.start_worker(SWITCHBOARD_LEASE_SECONDS=str(SHORT_LEASE))
    await slack.wait_for("chat.stopStream", timeout=ANSWERED_WITHIN)
    counts = await deployment.settled()

    assert counts == {"done": 1}, counts
    # One answer, and nothing the dead worker left half-written in the thread.
    thread = [(m.text, m.state) for m in slack.thread(CHANNEL, root)]
    assert thread == [("echo: survive a crash?", "stopped")]
    assert len(slack.calls_to("chat.startStream")) == 1
    assert len(slack.calls_to("chat.stopStream")) == 1
    assert asked(llm, "survive a crash?") == 2  # the hung attempt, then the answer


async def test_two_workers_share_the_load_renew_their_leases_and_a_killed_one_loses_nothing(
    deployment: Deployment, database: str | None, slack: FakeSlack, llm: FakeOpenAI,
    tmp_path: Path,
) -> None:
    """Twenty mentions, two workers sharing one Qdrant server (a stand-in), answers that
    take longer than the lease (so only renewal keeps them), one worker killed while
    answering: every thread ends with exactly one finished answer, the killed worker's
    messages finished in place by the other, and every answer drew on the shared index."""
    if database is None:
        pytest.skip("two workers cannot share one embedded Qdrant shard: on SQLite the "
                    "split is one web and one worker process")
    async with FakeQdrant() as qdrant:
        shared = {"QDRANT_URL": qdrant.base_url}
        doc = tmp_path / "docs" / "desk.md"
        doc.parent.mkdir()
        doc.write_text("# The service desk\n\nEvery question about VPN tokens goes to the "
                       "network desk, open weekdays from 8 to 6.\n")
        await deployment.procs.run("ingest", "ingest", str(doc.parent), env=shared)
        llm.default = Paced(first_token=0.2, tokens=40, rate=10)  # ~4 s an answer
        lease = {"SWITCHBOARD_LEASE_SECONDS": str(SHORT_LEASE)}  # shorter than an answer
        await deployment.start(**lease, **shared)
        # A worker on another machine, as it were: its own data directory, the same
        # PostgreSQL and Qdrant server.
        survivor = deployment.procs.start("worker", "worker", env={
            **deployment.worker_env, **lease, **shared,
            "DATA_DIR": str(tmp_path / "other-machine")})
        roots = [f"1700000004.{n:06d}" for n in range(20)]
        for n, root in enumerate(roots):
            body = mention(f"question {n}", ts=root, event_id=f"EvMany{n}")
            assert await post_slack(deployment.url, body) == 200
        # Killed with answers half streamed (not within the few ms after a stream opens,
        # before its ts is noted: a crash there still leaves that message cut off).
        await slack.wait_for("chat.appendStream", count=30, timeout=ANSWERED_WITHIN)
        assert deployment.worker is not None
        assert deployment.worker.kill() == -signal.SIGKILL

        counts = await deployment.settled()
    assert counts == {"done": 20}, counts
    assert survivor.running
    for n, root in enumerate(roots):
        thread = slack.thread(CHANNEL, root)
        assert len(thread) == 1, (root, [(m.text[:30], m.state) for m in thread])
        assert thread[0].state in ("stopped", "posted")
        assert is_echo(thread[0].text, f"question {n}"), thread[0].text[:60]
    answering = [r for r in llm.requests if r.path.endswith("/chat/completions")]
    assert all("network desk" in r.json["messages"][0]["content"] for r in answering)
    assert ("POST", "/collections/switchboard/points/query/batch") in qdrant.requests
    assert all(asked(llm, f"question {n}") >= 1 for n in range(20))


async def test_two_workers_answering_in_one_teams_chat_never_open_two_streams_at_once(
    deployment: Deployment, database: str | None, connector: FakeConnector,
    identity: ChannelIdentity, llm: FakeOpenAI, tmp_path: Path,
) -> None:
    """Teams allows one stream per 1:1 chat. Two quick questions, each taken by another
    worker (each answers one message at a time): the second answer comes as one message,
    not a second stream beside the first."""
    if database is None:
        pytest.skip("one worker per SQLite database: its own bookkeeping is enough")
    gate = asyncio.Event()
    llm.script(Reply("First answer, streaming slowly.", gate=gate), Reply("Second answer."))
    one_each = {"SWITCHBOARD_CONCURRENCY": "1"}
    await deployment.start(**one_each)
    deployment.procs.start("worker", "worker", env={
        **deployment.worker_env, **one_each, "DATA_DIR": str(tmp_path / "other-machine")})
    assert deployment.web is not None and deployment.web.url is not None
    first = personal(connector, "one?", id="1700000000001")
    assert await post_teams(deployment.web.url, identity, first) == 200
    await llm.wait_for_requests(1, timeout=ANSWERED_WITHIN)
    while not connector.streams:  # the first answer's stream is open
        await asyncio.sleep(0.02)
    second = personal(connector, "two?", id="1700000000002")
    assert await post_teams(deployment.web.url, identity, second) == 200
    await connector.wait_for_text("Second answer.", timeout=ANSWERED_WITHIN)
    gate.set()
    await connector.wait_for_text("First answer, streaming slowly.", timeout=ANSWERED_WITHIN)

    assert await deployment.settled() == {"done": 2}
    assert connector.violations == []
    assert len(connector.streams) == 1
    assert sorted(m.text for m in connector.messages()) == [
        "First answer, streaming slowly.", "Second answer."]


async def test_a_worker_frozen_past_its_lease_leaves_the_message_to_the_one_that_took_it_over(
    deployment: Deployment, database: str | None, slack: FakeSlack, llm: FakeOpenAI,
    tmp_path: Path,
) -> None:
    """A worker freezes (SIGSTOP: a long pause, a suspended VM) with an answer half
    streamed, for longer than its lease. Another worker takes the message over and
    finishes that same message. Thawed (SIGCONT), the first learns it was taken over —
    from its next lease renewal, or from its stream, stopped by the new owner — stops,
    and leaves the message alone: one whole answer in the thread, the new owner's."""
    if database is None:
        pytest.skip("one worker per SQLite database: its own bookkeeping is enough")
    async with FakeQdrant() as qdrant:
        shared = {"QDRANT_URL": qdrant.base_url,
                  "SWITCHBOARD_LEASE_SECONDS": str(SHORT_LEASE)}
        llm.script(Paced(first_token=0.1, tokens=60, rate=10, text="frozen " * 60),
                   Paced(first_token=0.1, tokens=20, rate=10, text="taken over " * 10))
        await deployment.start(**shared)
        root = "1700000005.000100"
        assert await post_slack(deployment.url, mention("who answers?", ts=root)) == 200
        await slack.wait_for("chat.appendStream", count=2, timeout=ANSWERED_WITHIN)
        first_owner = await _holder(deployment.database_url, noted=True)
        frozen = deployment.worker
        assert frozen is not None
        frozen.send(signal.SIGSTOP)

        deployment.procs.start("worker", "worker", env={
            **deployment.worker_env, **shared, "DATA_DIR": str(tmp_path / "other-machine")})
        while await _holder(deployment.database_url) == first_owner:  # once the lease ran out
            await asyncio.sleep(0.05)
        await slack.wait_for("chat.update", timeout=ANSWERED_WITHIN)  # the new owner's text
        thawed_at = time.monotonic()
        frozen.send(signal.SIGCONT)
        counts = await deployment.settled()
        for _ in range(200):  # until the thawed worker has noticed
            if "taken over by another worker" in frozen.stderr():
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("the thawed worker never learnt of the takeover")

    assert counts == {"done": 1}, counts
    [answer] = slack.thread(CHANNEL, root)
    assert answer.text.strip() == ("taken over " * 10).strip() and answer.state == "stopped"
    late = [c.method for c in slack.calls if c.at > thawed_at and "frozen" in json.dumps(c.body)]
    # Nothing more from the thawed worker but, perhaps, an append into its stream, which
    # the new owner had stopped: refused, and how it learns it was taken over.
    assert set(late) <= {"chat.appendStream"}, late
    assert len(slack.calls_to("chat.startStream")) == 1
    assert slack.calls_to("chat.postMessage") == slack.calls_to("chat.delete") == []


async def _holder(url: str, *, noted: bool = False) -> str:
    """Who holds the (only) inbox item; with `noted`, once its message is noted."""
    engine = create_engine(url)
    try:
        for _ in range(400):
            async with engine.connect() as conn:
                row = (await conn.execute(
                    text("SELECT lease_owner, reply_id FROM inbox"))).one_or_none()
            if row is not None and row.lease_owner and (row.reply_id or not noted):
                return str(row.lease_owner)
            await asyncio.sleep(0.025)
    finally:
        await engine.dispose()
    raise AssertionError("no worker holds the item")


async def test_a_stop_that_reaches_the_web_process_stops_the_answer_the_worker_writes(
    deployment: Deployment, slack: FakeSlack, llm: FakeOpenAI,
) -> None:
    """The Stop click lands on the web process while the worker process writes the answer:
    the stop crosses to the worker (a Unix datagram beside SQLite, NOTIFY on PostgreSQL),
    which cancels the model call and ends the answer where it was, marked stopped."""
    from core.replies import STOPPED_MARK
    from tests.e2e.slack.test_slack_stop import session_stopped
    from tests.e2e.conftest import events_until

    await deployment.start()
    url = deployment.url

    # 1. Web chat: the answer streams from the worker through the web process; so does Stop.
    gate = asyncio.Event()
    llm.script(Reply("The first words of a long answer", chunk_size=10, gate=gate))
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{url}/api/v1/chat/stream", json={"message": "go on"}) as stream:
            seen = await events_until(stream, "delta")
            conversation = seen[0][1]["conversation_id"]
            async with session.post(f"{url}/api/v1/conversations/{conversation}/stop") as stop:
                assert (stop.status, await stop.json()) == (200, {"stopping": True})
            done = (await events_until(stream, "done"))[-1][1]
    assert done["stopped"] is True and done["reply"] == f"The first \n\n{STOPPED_MARK}"
    await llm.wait_for_abandoned(1, timeout=ANSWERED_WITHIN)
    gate.set()

    # 2. Slack: the session's stop control, whose event reaches the web process.
    gate = asyncio.Event()
    llm.script(Reply("Slack words, then many more", chunk_size=6, gate=gate))
    root = "1700000001.000100"
    assert await post_slack(url, mention("tell me more", ts=root, event_id="EvStopRoles")) == 200
    await slack.wait_for("chat.startStream", timeout=ANSWERED_WITHIN)
    streams = slack.press_session_stop(CHANNEL, root)
    assert await post_slack(url, session_stopped(CHANNEL, root, streams)) == 200
    await llm.wait_for_abandoned(2, timeout=ANSWERED_WITHIN)
    gate.set()

    counts = await deployment.settled()
    assert counts.get("failed", 0) == 0 and counts.get("processing", 0) == 0, counts
    [answer] = slack.thread(CHANNEL, root)
    assert answer.text.endswith(STOPPED_MARK) and "many more" not in answer.text
    assert asked(llm, "go on") == asked(llm, "tell me more") == 1
