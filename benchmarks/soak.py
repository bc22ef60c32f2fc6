"""Soak: Switchboard in its production layout for N minutes under mixed load and faults,
then a check that every message was answered exactly once, nothing lost, nothing cut off.

    .venv/bin/python benchmarks/soak.py                # 10 minutes
    .venv/bin/python benchmarks/soak.py --minutes 2    # shorter
    .venv/bin/python benchmarks/soak.py --quick        # ~90 s, every fault once

The deployment: a throw-away PostgreSQL cluster (initdb/pg_ctl in a temporary directory,
run as the `postgres` user when this is root), `switchboard db upgrade` once, then three
processes: `serve --role web` (HTTP), worker A and worker B (`worker`, each its own data
directory). Without `pg_ctl` (or with `--sqlite`) it falls back to one `serve` process on
SQLite, with no database restart and no worker faults. Slack, Teams (the channel's keys,
Azure AD, the Bot Connector) and the model are fakes served from this process; the model
(`Paced`) streams each answer in ~0.8 s, "echo: <question>" padded with filler words.

Load, open loop at `--rate` messages a second: 50% Slack (a signed `app_mention`, each a
new thread), 30% Teams (channel mentions and 1:1 chats, where answers stream), 20% the
REST API (`POST /api/v1/chat`, each a new conversation). Every question is unique
("soak question N"), so its echo identifies it. Clients retry as the platforms do: Slack
re-POSTs the same event (`X-Slack-Retry-Num`) after a non-2xx, a 3 s timeout or a failed
connection, 1, 5 and 15 s later (Slack's own schedule, compressed); Teams re-POSTs the same
activity likewise; an API client repeats the same `message_id` every 2 s for up to 120 s
on 5xx, 409 or a failed connection until it gets a 200.

Faults, one every `--fault-every` seconds in this order, repeating (`--quick`: each once):
SIGKILL worker A (restarted 1 s later); SIGTERM worker A (restarted once drained);
SIGKILL the web process; SIGTERM the web process; PostgreSQL stopped (`-m fast`) for 3 s;
model faults (the next requests get HTTP 500s, then a stream cut partway, then hangs past
the deadline). Worker B is never signalled; its RSS (sampled every 5 s) should stay flat.

Once the load stops, it waits until every message has its final reply (or 180 s), then
classifies each one from what the person sees: answered (one final reply with the whole
echo), apologised (one final reply that is an apology: allowed, model faults cause them),
duplicated (more than one), cut off (a message left streaming, or part of an answer with
neither the rest nor an apology), lost (nothing). Latency: first POST → the final reply
seen (polled every 0.1 s). Exit status 1 if anything is duplicated, lost or cut off.
Prints a markdown section for benchmarks/README.md; `--json PATH` writes the raw results.
"""



from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, this file's folder comes first on sys.path and `core.py` would shadow
# the `core` package; the repository root is needed for the fakes in `tests`.
HERE = Path(__file__).parent.resolve()
sys.path[:] = [str(HERE.parent)] + [p for p in sys.path if Path(p or ".").resolve() != HERE]

import argparse
import asyncio
import contextlib
import functools
import json
import logging
import re
import shutil
import signal
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import aiohttp
from sqlalchemy import text

from adapters.sql.engine import create_engine
from benchmarks.serving import pct, proc_stat
from benchmarks.slack_load import ASKER, BOT_ID, BOT_TOKEN, BOT_USER, SECRET, TEAM, event_body
from benchmarks.slack_load import signed as slack_signed
from benchmarks.teams_load import APP_ID, APP_SECRET, TENANT, Person, activity, people
from benchmarks.teams_load import ASKER as TEAMS_ASKER
from benchmarks.teams_load import headers as teams_headers
from tests.e2e.processes import Child, Cluster, Processes, free_port, teams_env
from tests.fakes.bot_framework import ChannelIdentity, FakeConnector, FakeLogin
from tests.fakes.openai_server import Cut, Fail, FakeOpenAI, Hang, Paced, paced_tokens
from tests.fakes.slack_api import FakeSlack

MODEL = Paced(first_token=0.2, tokens=20, rate=30)  # ~0.8 s an answer, streamed
MIX = "STSWSTSWTS"  # message i goes to MIX[i % 10]: 50% Slack, 30% Teams, 20% web
SLACK_CHANNELS = [f"CSOAK{n}" for n in range(4)]
PERSONAL_CHATS = 20  # 1:1 chats the Teams personal messages share
API_KEY, API_USER = "soak-key-0123456789", "soak"
PLATFORM_RETRIES = (1.0, 5.0, 15.0)  # Slack and Teams: seconds before retry 1, 2, 3
SLACK_TIMEOUT, TEAMS_TIMEOUT, WEB_TIMEOUT = 3.0, 10.0, 30.0
WEB_RETRY_EVERY, WEB_RETRY_FOR = 2.0, 120.0
SETTLE_WITHIN = 180.0
LATE_DUPLICATES = 5.0  # after every message is final, wait this long for a second reply
RSS_EVERY = 5.0
POLL_EVERY = 0.1
SETTINGS = {
    "SWITCHBOARD_LEASE_SECONDS": "3", "SWITCHBOARD_ANSWER_DEADLINE": "8",
    "SWITCHBOARD_MODEL_TIMEOUT": "4", "SWITCHBOARD_SHUTDOWN_GRACE": "2",
    "SWITCHBOARD_BUNDLED_DOCS": "false", "SWITCHBOARD_LOG_LEVEL": "WARNING",
    "SWITCHBOARD_API_KEYS": f"{API_USER}:{API_KEY}", "SWITCHBOARD_MODEL": "fake-model",
    "OPENAI_API_KEY": "sk-soak-0123456789",
}
# What the apologies say (core/errors.py, core/worker.py, adapters/web/routes.py,
# adapters/slack/replier.py); every one starts "Sorry,".
APOLOGIES = {
    "model unreachable": "couldn't reach the language model",
    "incomplete": "the answer above is incomplete",
    "too slow": "the language model took too long",
    "storage": "couldn't save this conversation",
    "gave up": "couldn't answer this message after several attempts",
    "no worker": "nobody could start on your message",
    "no answer": "I have no answer to that",
    "nothing to say": "couldn't put an answer together",
    "something went wrong": "something went wrong while I was answering",
}

ANSWERED, APOLOGISED, DUPLICATED, CUT_OFF, LOST = (
    "answered", "apologised", "duplicated", "cut off", "lost")
PENDING = "pending"


def expected_answer(question: str) -> str:
    """The whole answer the paced fake model gives to `question`."""
    return "".join(paced_tokens(f"echo: {question}", MODEL.tokens))


def apology_kind(text: str) -> str | None:
    if "Sorry," not in text:
        return None
    return next((kind for kind, words in APOLOGIES.items() if words in text), "other")


# ----- results ----------------------------------------------------------------------------------


@dataclass
class Question:
    """One message sent, and what its client saw."""

    number: int
    channel: str  # slack, teams or web
    text: str
    key: str  # slack "<channel>/<ts>", teams the activity id, web the message_id
    first_sent: float = 0.0  # monotonic
    attempts: list[str] = field(default_factory=list)  # per POST: status, "timeout", "conn"
    gave_up: bool = False
    final_at: float | None = None  # monotonic: the final reply first seen
    outcome: str = PENDING
    detail: str = ""
    conversation_id: str | None = None  # web
    web_reply: str | None = None  # web: the 200's reply
    web_apologies: list[str] = field(default_factory=list)  # web: 503 apologies on the way

    @property
    def latency(self) -> float | None:
        return None if self.final_at is None else self.final_at - self.first_sent


@dataclass
class FaultRecord:
    at: float  # seconds after the load started
    name: str
    detail: str = ""


@dataclass
class RssSample:
    at: float
    role: str
    pid: int
    rss_mb: float
    hwm_mb: float


@dataclass
class Results:
    layout: str
    minutes: float
    rate: float
    started: str
    sent: dict[str, int] = field(default_factory=dict)
    outcomes: dict[str, int] = field(default_factory=dict)
    outcomes_by_channel: dict[str, dict[str, int]] = field(default_factory=dict)
    apologies: dict[str, int] = field(default_factory=dict)
    latency_p50: float = float("nan")
    latency_p99: float = float("nan")
    latency_max: float = float("nan")
    non_2xx: dict[str, dict[str, int]] = field(default_factory=dict)
    retries: dict[str, int] = field(default_factory=dict)
    gave_up: dict[str, int] = field(default_factory=dict)
    web_apologies_then_retried: int = 0
    model_requests: int = 0
    faults: list[FaultRecord] = field(default_factory=list)
    rss: list[RssSample] = field(default_factory=list)
    tracked_rss: dict[str, Any] = field(default_factory=dict)  # worker B: minute 1, end
    peak_rss: dict[str, float] = field(default_factory=dict)
    tracebacks: int = 0
    apology_tracebacks: int = 0
    traceback_kinds: dict[str, int] = field(default_factory=dict)  # "child: log → error" 
    unexpected_exits: list[str] = field(default_factory=list)
    teams_violations: list[str] = field(default_factory=list)
    inbox: dict[str, int] = field(default_factory=dict)
    settled_in: float = 0.0
    problems: list[dict[str, Any]] = field(default_factory=list)
    questions: list[Question] = field(default_factory=list)

    @property
    def bad(self) -> int:
        return sum(self.outcomes.get(k, 0) for k in (DUPLICATED, LOST, CUT_OFF))


# ----- PostgreSQL -------------------------------------------------------------------------------


async def inbox_counts(url: str) -> dict[str, int]:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            rows = (await conn.execute(
                text("SELECT status, count(*) FROM inbox GROUP BY status"))).all()
        return {str(status): int(n) for status, n in rows}
    finally:
        await engine.dispose()


async def add_inbox_rows(url: str, problems: list[dict[str, Any]]) -> None:
    """Each problem's inbox item as the database last saw it (its id names it in the logs)."""
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            for p in problems:
                suffix = str(p["key"]).rsplit("/", 1)[-1]
                rows = (await conn.execute(text(
                    "SELECT id, status, attempts, reply_id, lease_owner FROM inbox "
                    "WHERE message_key LIKE :suffix"), {"suffix": f"%{suffix}"})).all()
                p["inbox"] = [dict(row._mapping) for row in rows]
    finally:
        await engine.dispose()


# ----- the processes ----------------------------------------------------------------------------


@dataclass
class Deployment:
    """web (`serve --role web`, or `serve` on SQLite) and workers A and B, on a fixed port
    so that restarts keep the URL the clients post to."""

    procs: Processes
    workdir: Path
    split: bool  # web + two workers (PostgreSQL), or one `serve` (SQLite)
    port: int = field(default_factory=free_port)
    roles: dict[str, Child] = field(default_factory=dict)  # the current child of each role

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        await self.start_web()
        if self.split:
            self.start_worker("worker A")
            self.start_worker("worker B")

    async def start_web(self) -> None:
        args = ("serve", "--role", "web") if self.split else ("serve",)
        child = self.procs.start("web", *args, "--host", "127.0.0.1", "--port", str(self.port),
                                 env={"DATA_DIR": str(self.workdir / "data-web")})
        child.url = self.url
        self.roles["web"] = child
        await self.procs.ready(child)

    async def restart(self, role: str) -> None:
        if role == "web":
            await self.start_web()
        else:
            self.start_worker(role)

    def start_worker(self, role: str) -> None:
        name = role.lower().replace(" ", "-")
        self.roles[role] = self.procs.start(
            name, "worker", env={"DATA_DIR": str(self.workdir / f"data-{name}")})

    def unexpected_exits(self) -> list[str]:
        return [c.describe() for c in self.procs.children
                if c.command in ("serve", "worker") and not c.stopped and not c.running]


# ----- faults -----------------------------------------------------------------------------------


@dataclass
class Faults:
    deployment: Deployment
    llm: FakeOpenAI
    cluster: Cluster | None
    started: float
    log: list[FaultRecord] = field(default_factory=list)

    def schedule(self) -> list[tuple[str, Callable[[], Awaitable[str]]]]:
        found: list[tuple[str, Callable[[], Awaitable[str]]]] = []
        roles = ["worker A", "web"] if self.deployment.split else ["web"]
        found += [(f"{signum.name} {role}", functools.partial(self.signalled, role, signum))
                  for role in roles for signum in (signal.SIGKILL, signal.SIGTERM)]
        if self.cluster is not None:
            found.append(("PostgreSQL stopped 3 s", self.postgres_down))
        found.append(("model faults", self.model_faults))
        return found

    async def run(self, first: float, every: float, until: float, once: bool) -> None:
        plan = self.schedule()
        n = 0
        while True:
            at = self.started + first + n * every
            if at > until or (once and n >= len(plan)):
                return
            await asyncio.sleep(max(0.0, at - time.monotonic()))
            name, inject = plan[n % len(plan)]
            began = time.monotonic() - self.started
            try:
                detail = await inject()
            except Exception as e:  # noqa: BLE001 - a fault that failed is reported, not fatal
                detail = f"FAILED: {type(e).__name__}: {e}"
            self.log.append(FaultRecord(round(began, 1), name, detail))
            print(f"  {began:6.1f} s  {name}: {detail}", file=sys.stderr)
            n += 1

    async def signalled(self, role: str, signum: signal.Signals) -> str:
        """`signum` to `role`'s process, then the role started again: a killed worker a
        second later (as a supervisor would), anything else once it has exited."""
        child = self.deployment.roles[role]
        began = time.monotonic()
        if signum == signal.SIGKILL:
            code = child.kill()
        else:
            child.send(signum)
            code = await child.wait(30)
        exited = time.monotonic() - began
        if signum == signal.SIGKILL and role != "web":
            await asyncio.sleep(1.0)
        await self.deployment.restart(role)
        return (f"pid {child.pid} exited {code} after {exited:.1f} s; running again "
                f"{time.monotonic() - began:.1f} s after the signal")

    async def postgres_down(self) -> str:
        assert self.cluster is not None
        await asyncio.to_thread(self.cluster.stop, "fast")
        await asyncio.sleep(3.0)
        await asyncio.to_thread(self.cluster.start)
        return "stopped (fast), started again 3 s later"

    async def model_faults(self) -> str:
        before = len(self.llm.requests)
        # Bursts of 500s and of hangs past the timeout, with a stream cut after its first
        # pieces between them. Several turns run at once and each takes the next step, so a
        # burst is longer than one turn's attempts (1 + SWITCHBOARD_MODEL_RETRIES, 3).
        burst = 6
        self.llm.script(*[Fail()] * burst,
                        Cut("echo: this answer is cut off before it ends", pieces=2),
                        *[Hang(seconds=12)] * burst)
        return (f"{burst}× HTTP 500, 1 cut stream, {burst} hangs of 12 s from model request "
                f"{before + 1}")


# ----- clients ----------------------------------------------------------------------------------


@dataclass
class Clients:
    """Sends each question as its platform would, with the platform's retries."""

    session: aiohttp.ClientSession
    url: str
    teams_token: str
    service_url: str
    chats: list[Person]

    async def _post(self, path: str, data: bytes, headers: dict[str, str],
                    timeout: float) -> tuple[str, Any]:
        """(status or "timeout"/"conn", JSON body if any)."""
        try:
            async with self.session.post(f"{self.url}{path}", data=data, headers=headers,
                                         timeout=aiohttp.ClientTimeout(total=timeout)) as r:
                raw = await r.read()
                with contextlib.suppress(ValueError):
                    return str(r.status), json.loads(raw or b"null")
                return str(r.status), None
        except TimeoutError:
            return "timeout", None
        except aiohttp.ClientError:
            return "conn", None

    async def _deliver(self, q: Question, path: str, body: str,
                       headers: Callable[[int, str], dict[str, str]], timeout: float) -> None:
        """POST, then the same body again after each failure, as Slack and Teams retry."""
        reason = ""
        for attempt in range(len(PLATFORM_RETRIES) + 1):
            status, _ = await self._post(path, body.encode(), headers(attempt, reason), timeout)
            q.attempts.append(status)
            if status.isdigit() and 200 <= int(status) < 300:
                return
            reason = "http_timeout" if status == "timeout" else "http_error"
            if attempt < len(PLATFORM_RETRIES):
                await asyncio.sleep(PLATFORM_RETRIES[attempt])
        q.gave_up = True

    async def slack(self, q: Question) -> None:
        channel, ts = q.key.split("/")
        body = event_body(channel, ts, q.text, f"EvSOAK{q.number:08d}")

        def headers(attempt: int, reason: str) -> dict[str, str]:
            retry = {"X-Slack-Retry-Num": str(attempt), "X-Slack-Retry-Reason": reason}
            return {**slack_signed(body), **(retry if attempt else {})}

        await self._deliver(q, "/slack/events", body, headers, SLACK_TIMEOUT)

    async def teams(self, q: Question) -> None:
        person = self.chats[q.number % len(self.chats)] if q.number % 2 else None
        body = activity(int(q.key), q.text, self.service_url, person)
        await self._deliver(q, "/api/messages", body,
                            lambda attempt, reason: teams_headers(self.teams_token),
                            TEAMS_TIMEOUT)

    async def web(self, q: Question) -> None:
        data = json.dumps({"message": q.text, "message_id": q.key}).encode()
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {API_KEY}"}
        while True:
            status, body = await self._post("/api/v1/chat", data, headers, WEB_TIMEOUT)
            q.attempts.append(status)
            if isinstance(body, dict):
                q.conversation_id = body.get("conversation_id") or q.conversation_id
            if status == "200" and isinstance(body, dict) and "reply" in body:
                q.web_reply, q.final_at = str(body["reply"]), time.monotonic()
                return
            if isinstance(body, dict) and apology_kind(str(body.get("error", ""))):
                q.web_apologies.append(str(body["error"]))
            retryable = status in ("timeout", "conn", "409") or status.startswith("5")
            if not retryable or time.monotonic() - q.first_sent > WEB_RETRY_FOR:
                q.gave_up = True
                return
            await asyncio.sleep(WEB_RETRY_EVERY)

    def send(self, q: Question) -> Coroutine[Any, Any, None]:
        return {"slack": self.slack, "teams": self.teams, "web": self.web}[q.channel](q)


def question(number: int) -> Question:
    channel = {"S": "slack", "T": "teams", "W": "web"}[MIX[number % len(MIX)]]
    key = {"slack": f"{SLACK_CHANNELS[number % len(SLACK_CHANNELS)]}/"
                    f"{1_800_000_000 + number}.{number % 1_000_000:06d}",
           "teams": str(1_650_000_000_000 + number),
           "web": f"soak-{number}"}[channel]
    return Question(number, channel, f"soak question {number}", key)


# ----- what the person sees ---------------------------------------------------------------------


@dataclass
class Shown:
    """The bot's messages replying to one question: texts, and whether any still streams."""

    texts: list[str] = field(default_factory=list)
    streaming: int = 0


def slack_shown(slack: FakeSlack) -> dict[str, Shown]:
    found: dict[str, Shown] = defaultdict(Shown)
    for m in list(slack.messages.values()):
        if m.thread_ts is None:
            continue
        shown = found[f"{m.channel}/{m.thread_ts}"]
        if m.streaming:
            shown.streaming += 1
        if m.text.strip() or not m.streaming:
            shown.texts.append(m.text)
    return found


def teams_shown(connector: FakeConnector, final_only: bool = False) -> dict[str, Shown]:
    found: dict[str, Shown] = defaultdict(Shown)
    for m in connector.messages():
        if m.reply_to_id is not None:
            found[m.reply_to_id].texts.append(m.text)
    if final_only:
        return found
    # A stream is started by a reply to the question; match it by conversation and time.
    started = {(c.conversation_id, c.at): c.activity_id for c in connector.calls
               if c.kind == "reply" and c.status == 201 and _starts_stream(c.activity)}
    for stream in list(connector.streams.values()):
        if not stream.finished and stream.chunks:
            key = started.get((stream.conversation_id, stream.chunks[0].at))
            if key is not None:
                found[key].streaming += 1
    return found


def _starts_stream(body: dict[str, Any]) -> bool:
    return any(isinstance(e, dict) and str(e.get("type", "")).lower() == "streaminfo"
               and e.get("streamId") is None for e in body.get("entities") or ())


def judge(q: Question, shown: Shown) -> tuple[str, str]:
    """(outcome, detail) from the messages replying to `q` (Slack and Teams)."""
    whole = expected_answer(q.text)
    finals = [t for t in shown.texts if whole in t or apology_kind(t)]
    partial = [t for t in shown.texts if t not in finals]
    if shown.streaming or partial:
        return CUT_OFF, f"{shown.streaming} streaming; texts {shown.texts!r}"
    if len(finals) > 1:
        return DUPLICATED, f"texts {finals!r}"
    if finals:
        kind = apology_kind(finals[0])
        return (APOLOGISED, kind) if kind else (ANSWERED, "")
    return PENDING, ""


def judge_web(q: Question, assistant_turns: list[str] | None) -> tuple[str, str]:
    if assistant_turns is not None and len(assistant_turns) > 1:
        return DUPLICATED, f"assistant turns {assistant_turns!r}"
    if q.web_reply is not None:
        if expected_answer(q.text) in q.web_reply:
            return ANSWERED, ""
        kind = apology_kind(q.web_reply)
        return (APOLOGISED, kind) if kind else (CUT_OFF, f"reply {q.web_reply!r}")
    if q.web_apologies:
        return APOLOGISED, f"gave up after {q.web_apologies[-1]!r}"
    return PENDING, ""


@dataclass
class Watcher:
    """Notes when each Slack and Teams question's final reply is first seen."""

    slack: FakeSlack
    connector: FakeConnector
    open: dict[str, list[Question]] = field(default_factory=lambda: {"slack": [], "teams": []})

    def add(self, q: Question) -> None:
        if q.channel in self.open:
            self.open[q.channel].append(q)

    def poll(self) -> None:
        now = time.monotonic()
        for channel, shown in (("slack", slack_shown(self.slack)),
                               ("teams", teams_shown(self.connector, final_only=True))):
            still = []
            for q in self.open[channel]:
                outcome, _ = judge(q, shown.get(q.key, Shown()))
                if outcome in (ANSWERED, APOLOGISED, DUPLICATED):
                    q.final_at = now
                else:
                    still.append(q)
            self.open[channel] = still

    async def run(self) -> None:
        while True:
            self.poll()
            await asyncio.sleep(POLL_EVERY)


# ----- the run ----------------------------------------------------------------------------------


async def sample_rss(deployment: Deployment, started: float, into: list[RssSample]) -> None:
    while True:
        for role, child in list(deployment.roles.items()):
            with contextlib.suppress(ProcessLookupError):
                hwm, rss, _ = proc_stat(child.pid)
                into.append(RssSample(round(time.monotonic() - started, 1), role, child.pid,
                                      round(rss, 1), round(hwm, 1)))
        await asyncio.sleep(RSS_EVERY)


async def web_turns(session: aiohttp.ClientSession, url: str,
                    conversation_id: str) -> list[str] | None:
    """The assistant turns of a web conversation (None if it could not be read)."""
    headers = {"Authorization": f"Bearer {API_KEY}"}
    with contextlib.suppress(aiohttp.ClientError, TimeoutError):
        async with session.get(f"{url}/api/v1/conversations/{conversation_id}",
                               headers=headers, timeout=aiohttp.ClientTimeout(total=10)) as r:
            if r.status == 200:
                body = await r.json()
                return [t["content"] for t in body["turns"] if t["role"] == "assistant"]
    return None


async def warm_up(clients: Clients, watcher: Watcher) -> None:
    """One question per channel, answered before the clock starts (keys, tokens, rosters)."""
    warm = [Question(-1, "slack", "warm-up slack", "CWARM/1790000000.000001"),
            Question(-3, "teams", "warm-up teams", "1640000000000001"),
            Question(-2, "web", "warm-up web", "soak-warm-up")]
    for q in warm:
        q.first_sent = time.monotonic()
        watcher.add(q)
    await asyncio.gather(*(clients.send(q) for q in warm))
    deadline = time.monotonic() + 60
    while any(q.final_at is None for q in warm):
        if time.monotonic() > deadline:
            raise RuntimeError("warm-up not answered in 60 s: "
                               f"{[(q.channel, q.attempts) for q in warm if q.final_at is None]}")
        await asyncio.sleep(0.2)


async def soak(args: argparse.Namespace) -> Results:
    split = not args.sqlite and shutil.which("pg_ctl") is not None \
        and shutil.which("initdb") is not None
    minutes = 80 / 60 if args.quick else args.minutes
    results = Results(layout="PostgreSQL: web + worker A + worker B" if split
                      else "SQLite: one serve process (no pg_ctl: no worker or database faults)",
                      minutes=round(minutes, 2), rate=args.rate,
                      started=datetime.now(UTC).isoformat(timespec="seconds"))
    workdir = Path(tempfile.mkdtemp(prefix="switchboard-soak-"))
    cluster = Cluster.create() if split else None
    try:
        if cluster is not None:
            cluster.start()
        with ChannelIdentity() as identity, FakeLogin() as login:
            login.add_app(APP_ID, APP_SECRET, tenant=TENANT)
            async with FakeSlack(team_id=TEAM, bot_user_id=BOT_USER, bot_id=BOT_ID) as slack, \
                    FakeConnector() as connector, \
                    FakeOpenAI(model="fake-model", default=MODEL) as llm:
                slack.add_user(ASKER, name="ada", real_name="Ada Lovelace",
                               email="ada@example.com")
                chats = people(PERSONAL_CHATS)
                connector.add_member(id=TEAMS_ASKER[0], aad_object_id=TEAMS_ASKER[1],
                                     name=TEAMS_ASKER[2], email="dave@example.com")
                for p in chats:
                    connector.add_member(id=p.id, aad_object_id=p.aad_object_id, name=p.name,
                                         email=f"{p.id[3:]}@example.com")
                env = {
                    **SETTINGS,
                    "SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_SIGNING_SECRET": SECRET,
                    "SLACK_API_URL": slack.base_url, "OPENAI_BASE_URL": llm.base_url,
                    **teams_env(identity, login, app=APP_ID, secret=APP_SECRET, tenant=TENANT),
                    **({"DATABASE_URL": cluster.url} if cluster else {}),
                }
                with Processes(workdir / "processes", env) as procs:
                    deployment = Deployment(procs, workdir, split)
                    if split:
                        await procs.run("db-upgrade", "db", "upgrade")
                    await deployment.start()
                    async with aiohttp.ClientSession(
                            connector=aiohttp.TCPConnector(limit=0)) as session:
                        clients = Clients(
                            session, deployment.url,
                            identity.token(app_id=APP_ID, service_url=connector.base_url),
                            connector.base_url, chats)
                        await run_load(args, minutes, results, deployment, clients, slack,
                                       connector, llm, cluster)
                    results.unexpected_exits = deployment.unexpected_exits()
                    scan_stderr(procs, results)
                    if args.logs:
                        keep_logs(args.logs, procs, cluster)
                    if cluster is not None:
                        with contextlib.suppress(Exception):
                            results.inbox = await inbox_counts(cluster.url)
                            await add_inbox_rows(cluster.url, results.problems)
    finally:
        if cluster is not None:
            cluster.remove()
        shutil.rmtree(workdir, ignore_errors=True)
    return results


async def run_load(args: argparse.Namespace, minutes: float, results: Results,
                   deployment: Deployment, clients: Clients, slack: FakeSlack,
                   connector: FakeConnector, llm: FakeOpenAI, cluster: Cluster | None) -> None:
    watcher = Watcher(slack, connector)
    watching = asyncio.create_task(watcher.run())
    await warm_up(clients, watcher)
    warm_requests = len(llm.requests)
    started = time.monotonic()
    until = started + minutes * 60
    faults = Faults(deployment, llm, cluster, started)
    first, every = (6.0, 12.0) if args.quick else (args.fault_every, args.fault_every)
    fault_task = asyncio.create_task(faults.run(first, every, until - 5, once=args.quick))
    sampling = asyncio.create_task(sample_rss(deployment, started, results.rss))
    print(f"load: {args.rate}/s for {minutes * 60:.0f} s on {results.layout}", file=sys.stderr)
    sending: list[asyncio.Task[None]] = []
    questions: list[Question] = []
    number = 0
    while (due := started + number / args.rate) < until:
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        q = question(number)
        q.first_sent = time.monotonic()
        questions.append(q)
        watcher.add(q)
        sending.append(asyncio.create_task(clients.send(q)))
        number += 1
    await fault_task
    print(f"load done ({len(questions)} sent); waiting for the last replies…", file=sys.stderr)
    stopped = time.monotonic()
    await settle(questions, sending, watcher, stopped)
    results.settled_in = round(time.monotonic() - stopped, 1)
    for task in (watching, sampling, *sending):
        task.cancel()
    await asyncio.gather(watching, sampling, *sending, return_exceptions=True)
    await judge_all(questions, clients, slack, connector)
    summarise(results, questions, faults.log, len(llm.requests) - warm_requests, connector)


async def settle(questions: list[Question], sending: list[asyncio.Task[None]],
                 watcher: Watcher, stopped: float) -> None:
    """Until every client is done and every message has its final reply, or SETTLE_WITHIN
    seconds; then LATE_DUPLICATES more seconds for second replies."""
    while time.monotonic() - stopped < SETTLE_WITHIN:
        clients_done = all(t.done() for t in sending)
        if clients_done and all(q.final_at is not None or q.gave_up for q in questions):
            await asyncio.sleep(LATE_DUPLICATES)
            return
        await asyncio.sleep(0.5)
    watcher.poll()


async def judge_all(questions: list[Question], clients: Clients, slack: FakeSlack,
                    connector: FakeConnector) -> None:
    shown = {"slack": slack_shown(slack), "teams": teams_shown(connector)}
    for q in questions:
        if q.channel == "web":
            turns = await web_turns(clients.session, clients.url, q.conversation_id) \
                if q.conversation_id else None
            q.outcome, q.detail = judge_web(q, turns)
        else:
            q.outcome, q.detail = judge(q, shown[q.channel].get(q.key, Shown()))
        if q.outcome == PENDING:
            q.outcome, q.detail = LOST, "no final reply" + (" (client gave up)" if q.gave_up
                                                            else "")


def summarise(results: Results, questions: list[Question], faults: list[FaultRecord],
              model_requests: int, connector: FakeConnector) -> None:
    results.questions = questions
    results.faults = faults
    results.model_requests = model_requests
    results.teams_violations = list(connector.violations)
    channels = ("slack", "teams", "web")
    results.sent = {c: sum(1 for q in questions if q.channel == c) for c in channels}
    results.outcomes = dict(Counter(q.outcome for q in questions))
    results.outcomes_by_channel = {
        c: dict(Counter(q.outcome for q in questions if q.channel == c)) for c in channels}
    results.apologies = dict(Counter(q.detail for q in questions if q.outcome == APOLOGISED))
    latencies = [q.latency for q in questions if q.outcome == ANSWERED and q.latency is not None]
    if latencies:
        results.latency_p50, results.latency_p99 = pct(latencies, 50), pct(latencies, 99)
        results.latency_max = max(latencies)
    for c in channels:
        attempts = [a for q in questions if q.channel == c for a in q.attempts]
        results.non_2xx[c] = dict(Counter(a for a in attempts
                                          if not (a.isdigit() and 200 <= int(a) < 300)))
        results.retries[c] = sum(max(0, len(q.attempts) - 1) for q in questions
                                 if q.channel == c)
        results.gave_up[c] = sum(1 for q in questions if q.channel == c and q.gave_up)
    results.web_apologies_then_retried = sum(1 for q in questions if q.web_apologies)
    for role in sorted({s.role for s in results.rss}):
        results.peak_rss[role] = max(s.hwm_mb for s in results.rss if s.role == role)
    tracked = [s for s in results.rss if s.role == ("worker B" if "worker B" in
                                                     results.peak_rss else "web")]
    if tracked:
        minute = next((s for s in tracked if s.at >= 60), tracked[0])
        results.tracked_rss = {"role": tracked[0].role, "at_s": minute.at,
                               "minute_1_mb": minute.rss_mb, "end_mb": tracked[-1].rss_mb,
                               "growth_mb": round(tracked[-1].rss_mb - minute.rss_mb, 1)}
    results.problems = [
        {"number": q.number, "channel": q.channel, "key": q.key, "outcome": q.outcome,
         "detail": q.detail, "sent_at_s": round(q.first_sent - questions[0].first_sent, 1),
         "attempts": q.attempts, "near_fault": near_fault(q, questions[0].first_sent, faults)}
        for q in questions if q.outcome in (DUPLICATED, LOST, CUT_OFF)]


def near_fault(q: Question, started: float, faults: list[FaultRecord]) -> str:
    at = q.first_sent - started
    before = [f for f in faults if f.at <= at + 1]
    if not before:
        return "none before it"
    f = before[-1]
    return f"{f.name} at {f.at:.1f} s ({at - f.at:+.1f} s before this was sent)"


LOG_RECORD = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d ")
CHAINED = ("The above exception", "During handling of the above exception")


def scan_stderr(procs: Processes, results: Results) -> None:
    """Traceback counts over every child's stderr: those logged with an apology ("answering
    message … failed": a model fault, expected) apart from the rest."""
    kinds: Counter[str] = Counter()
    for child in procs.children:
        lines = child.stderr().splitlines()
        records = [n for n, line in enumerate(lines) if LOG_RECORD.match(line)]
        for n, line in enumerate(lines):
            previous = next((p for p in reversed(lines[:n]) if p.strip()), "")
            if not line.startswith("Traceback") or previous.startswith(CHAINED):
                continue  # not a traceback, or the next part of one counted already
            results.tracebacks += 1
            logged = next((lines[k] for k in reversed(records) if k < n), "")
            if "answering message" in logged and "failed" in logged:
                results.apology_tracebacks += 1
                continue
            end = next((k for k in records if k > n), len(lines))
            error = next((p for p in reversed(lines[n:end])
                          if p.strip() and not p.startswith(" ")), "")
            role = re.sub(r"-\d+$", "", child.name)  # web-3 → web
            logged = re.sub(r"\d+", "N", logged.split(" ", 2)[-1])  # no time; ids alike
            kinds[f"{role}: {logged[:140]} → {error[:160]}"] += 1
    results.traceback_kinds = dict(kinds.most_common())


def keep_logs(directory: Path, procs: Processes, cluster: Cluster | None) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for child in procs.children:
        shutil.copy(child.stderr_path, directory / f"{child.name}.stderr.log")
    if cluster is not None and (cluster.home / "server.log").exists():
        shutil.copy(cluster.home / "server.log", directory / "postgresql.log")


# ----- the report -------------------------------------------------------------------------------


def report(r: Results) -> str:
    o = r.outcomes
    sent = sum(r.sent.values())
    rss = r.tracked_rss
    rss_cell = (f"{rss['minute_1_mb']:.0f} → {rss['end_mb']:.0f} ({rss['growth_mb']:+.0f})"
                if rss else "–")
    faults = Counter(f.name for f in r.faults)
    lines = [
        f"### Soak, {r.minutes:g} min at {r.rate:g} messages/s ({r.started})", "",
        f"{r.layout}. Every fault with its time is listed below.", "",
        ("| sent (Slack/Teams/web) | answered | apologised | duplicated | lost | cut off "
        "| p50 s | p99 s | worker B RSS MB (1 min → end) | faults |"),
        "|---|---:|---:|---:|---:|---:|---:|---:|---|---:|",
        (f"| {sent} ({r.sent['slack']}/{r.sent['teams']}/{r.sent['web']}) "
        f"| {o.get(ANSWERED, 0)} | {o.get(APOLOGISED, 0)} | {o.get(DUPLICATED, 0)} "
        f"| {o.get(LOST, 0)} | {o.get(CUT_OFF, 0)} | {r.latency_p50:.2f} | {r.latency_p99:.2f} "
        f"| {rss_cell} | {len(r.faults)} |"), "",
    ]
    notes = [
        "outcomes by channel: " + "; ".join(
            f"{c} " + ", ".join(f"{n} {k}" for k, n in sorted(v.items()))
            for c, v in r.outcomes_by_channel.items()),
        "apologies: " + (", ".join(f"{n}× {k}" for k, n in sorted(r.apologies.items()))
                         or "none")
        + f"; web requests answered after a 503 apology and a retry: "
        f"{r.web_apologies_then_retried}",
        (f"latency max {r.latency_max:.2f} s; settled {r.settled_in:.0f} s after the load "
        f"stopped; {r.model_requests} model requests"),
        "HTTP non-2xx / failed attempts: " + "; ".join(
            f"{c} " + (", ".join(f"{n}× {k}" for k, n in sorted(v.items())) or "none")
            for c, v in r.non_2xx.items()),
        "retries: " + ", ".join(f"{c} {n}" for c, n in r.retries.items())
        + "; clients that gave up: " + ", ".join(f"{c} {n}" for c, n in r.gave_up.items()),
        "peak RSS MB: " + ", ".join(f"{k} {v:.0f}" for k, v in r.peak_rss.items())
        + (f"; {rss['role']} RSS {rss['minute_1_mb']:.0f} MB at {rss['at_s']:.0f} s, "
           f"{rss['end_mb']:.0f} MB at the end" if rss else ""),
        "faults: " + ", ".join(f"{n}× {k}" for k, n in faults.items()),
        (f"Tracebacks in the processes' stderr: {r.tracebacks} ({r.apology_tracebacks} logged "
        f"with an apology)"),
        f"inbox at the end: {r.inbox or 'not read'}",
        f"Teams connector protocol violations: {len(r.teams_violations)}",
    ]
    if r.unexpected_exits:
        notes.append("processes that exited unasked: " + "; ".join(r.unexpected_exits))
    lines += [f"- {n}" for n in notes]
    lines += ["", "Faults:", ""] + [f"- {f.at:6.1f} s {f.name}: {f.detail}" for f in r.faults]
    if r.traceback_kinds:
        lines += ["", "Tracebacks not logged with an apology, by kind (first 8):", ""] + [
            f"- {n}× {k}" for k, n in list(r.traceback_kinds.items())[:8]]
    if r.teams_violations:
        lines += ["", "Teams violations (first 5):", ""] + [
            f"- {v[:200]}" for v in r.teams_violations[:5]]
    if r.problems:
        lines += ["", f"Duplicated, lost or cut off ({len(r.problems)}, first 20):", ""]
        lines += [f"- #{p['number']} {p['channel']} {p['key']} sent at {p['sent_at_s']} s: "
                  f"{p['outcome']}; {p['detail'][:1500]}; attempts {p['attempts']}; last fault "
                  f"{p['near_fault']}; inbox {p.get('inbox', '?')}" for p in r.problems[:20]]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--quick", action="store_true",
                        help="80 s of load, every fault once (~90 s in all)")
    parser.add_argument("--rate", type=float, default=4.0, help="messages a second (4)")
    parser.add_argument("--fault-every", type=float, default=15.0, help="seconds (15)")
    parser.add_argument("--sqlite", action="store_true",
                        help="one `serve` process on SQLite, as without pg_ctl")
    parser.add_argument("--json", type=Path, metavar="PATH", help="write the raw results")
    parser.add_argument("--logs", type=Path, metavar="DIR",
                        help="keep every process's stderr (and PostgreSQL's log) in DIR")
    args = parser.parse_args()
    # The fakes' "Error handling request" tracebacks: a client that left (a killed process,
    # a model request that timed out) is expected here, not news.
    logging.getLogger("aiohttp.server").setLevel(logging.CRITICAL)
    began = time.monotonic()
    results = asyncio.run(soak(args))
    print(report(results))
    if args.json:
        args.json.write_text(json.dumps(asdict(results), indent=1, default=str))
    print(f"\nran {time.monotonic() - began:.0f} s", file=sys.stderr)
    sys.exit(1 if results.bad else 0)


if __name__ == "__main__":
    main()
