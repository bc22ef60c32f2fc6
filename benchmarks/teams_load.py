"""Teams under load: activities with valid channel tokens against `switchboard serve`, end to end.

`switchboard serve` runs as its own process (fresh data directory per scenario; with
`--layout split`, `switchboard serve --role web` plus `switchboard worker`), configured
for Teams against fakes served from this process: the channel's OpenID metadata and signing
keys and a fake Azure AD (both on background threads), the Bot Connector and an
OpenAI-compatible model (both on this event loop). C clients post activities to
`/api/messages`, each with a valid `Authorization: Bearer` channel token (minted before the
clock starts: Teams reuses a token for many requests, and the server checks the signature of
every one). A client posts again once its HTTP response arrives, never waiting for the
answer (`--pace reply`: it waits for its answer too, so at most C questions are in flight).
Every activity is a new message: three in four mention the bot in a channel, each starting
its own thread (`;messageid=`); one in four is a personal chat with the bot, in one of a few
1:1 chats (`--personal-chats`), where the answer streams (informative update, then final).
About one activity in ten is delivered a second time, unchanged, 0.2 s after the first POST
went out, as Teams redelivers; it must not be answered again.

Before the clock starts, a warm-up message in a channel and one in each personal chat are
answered: the first request fetches the signing keys, the first answer an Azure AD token,
and the first message from each person a roster entry.

Recorded per activity: HTTP latency (POST → response); reply latency (POST → the final
visible message replying to it at the connector: the stream's final in a personal chat, the
message elsewhere); first sign of life (POST → the first activity replying to it: typing in
a channel, the informative stream update in a personal chat). Also: replies per second
(answers / first POST → last answer), duplicates (an activity, redelivered or not, answered
or streamed into more than once), missing answers (none came for 30 s), non-2xx responses,
the fake connector's protocol violations; and over every process of Switchboard's process
trees (see `serving.py`): CPU per activity (after the warm-up) and the sum of their peak RSS.

    .venv/bin/python benchmarks/teams_load.py            # instant model at 1, 10, 50; slow at 50
    .venv/bin/python benchmarks/teams_load.py --quick    # a smoke run

Targets (the Teams issue): HTTP response p99 < 150 ms at 50 concurrent, zero duplicates.
Results: benchmarks/README.md.
"""

# ruff: noqa: E402 - sys.path is set up before the imports that depend on it

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
import copy
import functools
import itertools
import json
import resource
import shutil
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aiohttp

from benchmarks.serving import LAYOUTS, pct, profiled, serve
from tests.fakes.bot_framework import ChannelIdentity, ConnectorCall, FakeConnector, FakeLogin
from tests.fakes.openai_server import FakeOpenAI, Hang

FIXTURES = HERE.parent / "tests/fixtures/teams"
# The bot of the recorded channel fixture, so its recipient and mention are ours.
APP_ID = "eac5e5c6-ab14-4f50-80cb-49213fe51b1a"
BOT_ID = f"28:{APP_ID}"
APP_SECRET = "bench-client-secret-0123456789"
TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"  # the tenant of the recorded fixtures
CHANNEL = "19:097e6717fd7245bdbeba6baa13840db8@thread.skype"  # the fixture's channel
ASKER = ("29:1CFIxRJBLjT_io3iNsDZxMk_4YPWQmr3DZUM1I6ihf5L2ocCDqg9S1vkHK6kRdGfK1P_2LFE2nQqFIvdu"
         "-GBOZA", "6b703ce3-6d14-4fe6-b90c-dc5f03657ae4", "Dave Taniguchi")
PERSONAL_EVERY = 4  # activity i is a personal chat when i % 4 == 3
REDELIVER_EVERY = 10  # activity i is delivered twice when i % 10 == 5
REDELIVER_AFTER = 0.2
FIRST_ID = 1_600_000_000_000  # inbound activity ids (the fake connector's own start at 1.7e12)
WARMUP_ID = 1_500_000_000_000
SLOW_FIRST_TOKEN = 0.5
REPLY_WAIT = 30.0


@dataclass
class Scenario:
    name: str
    concurrency: int
    events: int
    slow: bool = False
    pace: str = "ack"  # "ack": post again once the HTTP response came; "reply": once answered


@dataclass(frozen=True)
class Person:
    """Someone who chats with the bot 1:1, in their own personal conversation."""

    id: str
    aad_object_id: str
    name: str
    conversation: str


def people(chats: int) -> list[Person]:
    personal = fixture("bbjs_message_personal.json")
    first = Person(personal["from"]["id"], personal["from"]["aadObjectId"],
                   personal["from"]["name"], personal["conversation"]["id"])
    return [first] + [
        Person(f"29:bench-person-{k}", str(uuid.uuid5(uuid.NAMESPACE_OID, f"bench-{k}")),
               f"Bench Person{k}", f"a:bench-personal-chat-{k}")
        for k in range(1, chats)
    ]


@dataclass
class Tracker:
    """Follows the fake connector's call log, per inbound activity id (the replies' replyToId):
    first sign of life, final messages and stream starts. `poll` reads only the calls that
    arrived since the last poll."""

    connector: FakeConnector
    seen: int = 0
    first_sign: dict[str, float] = field(default_factory=dict)
    answered: dict[str, float] = field(default_factory=dict)
    answers: Counter[str] = field(default_factory=Counter)
    starts: Counter[str] = field(default_factory=Counter)
    texts: dict[str, list[str]] = field(default_factory=dict)
    failed_calls: Counter[tuple[str, int | None]] = field(default_factory=Counter)

    def poll(self) -> None:
        calls = self.connector.calls
        for call in calls[self.seen :]:
            self._see(call)
        self.seen = len(calls)

    def _see(self, call: ConnectorCall) -> None:
        if call.status is None or not 200 <= call.status < 300:
            self.failed_calls[(call.kind, call.status)] += 1
            return
        if call.kind not in ("send", "reply"):
            return  # roster look-ups
        activity = call.activity
        replied_to = call.activity_id if call.kind == "reply" else activity.get("replyToId")
        if replied_to is None:
            return
        self.first_sign.setdefault(replied_to, call.at)
        info = stream_info(activity)
        if activity.get("type") == "message":  # a message, or the final of a stream
            self.answers[replied_to] += 1
            self.answered.setdefault(replied_to, call.at)
            self.texts.setdefault(replied_to, []).append(call.text)
        elif info is not None and info.get("streamId") is None:
            self.starts[replied_to] += 1


def stream_info(activity: dict[str, Any]) -> dict[str, Any] | None:
    for entity in activity.get("entities") or ():
        if isinstance(entity, dict) and str(entity.get("type", "")).lower() == "streaminfo":
            return entity
    return None


@functools.cache
def fixture(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / name).read_text())  # type: ignore[no-any-return]


def activity(number: int, question: str, service_url: str, person: Person | None) -> str:
    """A new message with id `number`: a channel mention starting its own thread, or (with a
    `person`) a message in that person's chat with the bot. Returns the JSON body."""
    now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    activity_id = str(number)
    if person is None:
        body = copy.deepcopy(fixture("bbjs_message_channel_mention.json"))
        body["entities"][0]["mentioned"]["id"] = BOT_ID
        body["conversation"]["id"] = f"{CHANNEL};messageid={activity_id}"
        body["text"] = f"<at>My Combined</at> {question}\n"
        body.pop("attachments", None)  # the recorded HTML copy of another text
    else:
        body = copy.deepcopy(fixture("bbjs_message_personal.json"))
        body["from"] = {"id": person.id, "name": person.name, "aadObjectId": person.aad_object_id}
        body["conversation"]["id"] = person.conversation
        body["text"] = question
    body.update(id=activity_id, serviceUrl=service_url, timestamp=now, localTimestamp=now,
                recipient={"id": BOT_ID, "name": "Switchboard"})
    return json.dumps(body)


def headers(token: str) -> dict[str, str]:
    return {"Content-Type": "application/json; charset=utf-8", "Authorization": f"Bearer {token}"}


@contextlib.asynccontextmanager
async def switchboard(  # type: ignore[no-untyped-def]
    identity: ChannelIdentity, login: FakeLogin, llm: FakeOpenAI, workdir: Path,
    extra_env: dict[str, str], layout: str,
):
    """Switchboard (the commands of `layout`) configured for Teams against the fakes."""
    env = {
        "MicrosoftAppId": APP_ID, "MicrosoftAppPassword": APP_SECRET,
        "MicrosoftAppTenantId": TENANT,
        "TO_BOT_FROM_CHANNEL_OPENID_METADATA_URL": identity.metadata_url,
        "TO_CHANNEL_FROM_BOT_LOGIN_URL": login.authority(TENANT),
        "VALIDATE_AUTHORITY": "false", "TEAMS_SERVICE_URL_ALLOWLIST": "127.0.0.1",
        "REQUESTS_CA_BUNDLE": login.ca_file,  # MSAL speaks HTTPS only; trust the fake's CA
        "OPENAI_BASE_URL": llm.base_url, "OPENAI_API_KEY": "sk-bench-0123456789",
        "SWITCHBOARD_MODEL": "fake-model", "SWITCHBOARD_LOG_LEVEL": "WARNING",
        **extra_env,
    }
    async with serve(LAYOUTS[layout], env, workdir) as served:
        yield served


async def run(
    scenario: Scenario, identity: ChannelIdentity, login: FakeLogin, chats: int,
    extra_env: dict[str, str], layout: str = "all", profile: Path | None = None,
) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="switchboard-teams-load-"))
    token_requests = len(login.token_requests)  # the fake Azure AD serves every scenario
    try:
        async with FakeConnector() as connector, FakeOpenAI(model="fake-model") as llm:
            connector.add_member(id=ASKER[0], aad_object_id=ASKER[1], name=ASKER[2],
                                 email="dave@example.com")
            for person in people(chats):
                connector.add_member(id=person.id, aad_object_id=person.aad_object_id,
                                     name=person.name, email=f"{person.id[3:]}@example.com")
            if scenario.slow:  # every request waits before its first byte, then echoes
                llm.script(*[Hang(seconds=SLOW_FIRST_TOKEN)] * ((scenario.events + chats + 1) * 3))
            async with switchboard(identity, login, llm, workdir, extra_env, layout) as served:
                ready = served.sample()
                tracker = Tracker(connector)
                token = identity.token(app_id=APP_ID, service_url=connector.base_url)
                messages_url = f"{served.url}/api/messages"
                await warm_up(tracker, messages_url, token, chats)
                warm_violations = len(connector.violations)
                warm = served.sample()
                label = scenario.name.replace(" ", "-").replace(",", "")
                async with profiled(served, profile, label):
                    result = await load(scenario, tracker, messages_url, token, chats)
                end = served.sample()
                served.check_alive()
            result.update(rss_mb=end.peak_rss_mb, ready_rss_mb=ready.rss_mb,
                          server_cpu_s=end.cpu_s - warm.cpu_s, processes=end.processes,
                          alive=end.alive, fleeting=end.fleeting,
                          left_behind=served.left_behind)
            result["stderr"] = served.problems()
            result["model_requests"] = len(llm.requests)
            result["violations"] = list(connector.violations)
            result["warm_violations"] = warm_violations
            result["unfinished_streams"] = sum(
                1 for s in connector.streams.values() if not s.finished)
            result["token_requests"] = len(login.token_requests) - token_requests
            return result
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


async def warm_up(tracker: Tracker, messages_url: str, token: str, chats: int) -> None:
    """A channel mention, then a message in each personal chat, one after another, each
    answered before the next: keys, Azure AD token and roster entries are fetched here."""
    service_url = tracker.connector.base_url
    async with aiohttp.ClientSession() as session:
        for n, person in enumerate([None, *people(chats)]):
            body = activity(WARMUP_ID + n, f"warm-up {n}", service_url, person)
            async with session.post(messages_url, data=body.encode(), headers=headers(token)) as r:
                if r.status != 200:
                    raise RuntimeError(f"warm-up activity got HTTP {r.status}: {await r.text()}")
            deadline = time.monotonic() + REPLY_WAIT
            while str(WARMUP_ID + n) not in tracker.answered:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"warm-up message {n} was not answered in {REPLY_WAIT} s")
                await asyncio.sleep(0.01)
                tracker.poll()


async def load(
    scenario: Scenario, tracker: Tracker, messages_url: str, token: str, chats: int
) -> dict[str, Any]:
    service_url = tracker.connector.base_url
    everyone = people(chats)
    sent: dict[str, float] = {}
    questions: dict[str, str] = {}
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    again: list[float] = []  # HTTP latency of redeliveries
    again_statuses: Counter[int] = Counter()
    numbers = itertools.count()
    answered = asyncio.Event()
    auth = headers(token)

    async def redeliver(session: aiohttp.ClientSession, data: bytes, at: float) -> None:
        await asyncio.sleep(max(0.0, at - time.monotonic()))
        start = time.monotonic()
        async with session.post(messages_url, data=data, headers=auth) as r:
            await r.read()
        again.append((time.monotonic() - start) * 1000)
        again_statuses[r.status] += 1

    async def client(session: aiohttp.ClientSession, pending: list[asyncio.Task[None]]) -> None:
        while (i := next(numbers)) < scenario.events:
            person = everyone[(i // PERSONAL_EVERY) % chats] \
                if i % PERSONAL_EVERY == PERSONAL_EVERY - 1 else None
            key, question = str(FIRST_ID + i), f"question {i}"
            data = activity(FIRST_ID + i, question, service_url, person).encode()
            questions[key] = question
            sent[key] = start = time.monotonic()
            if i % REDELIVER_EVERY == REDELIVER_EVERY // 2:
                pending.append(asyncio.create_task(
                    redeliver(session, data, start + REDELIVER_AFTER)))
            async with session.post(messages_url, data=data, headers=auth) as r:
                await r.read()
            latencies.append((time.monotonic() - start) * 1000)
            statuses[r.status] += 1
            while scenario.pace == "reply" and key not in tracker.answered:
                if time.monotonic() - start > REPLY_WAIT:
                    break
                await answered.wait()

    async def watch() -> None:  # follows the call log; wakes reply-paced clients
        while True:
            tracker.poll()
            answered.set()
            answered.clear()
            await asyncio.sleep(0.005)

    rusage = resource.getrusage(resource.RUSAGE_SELF)
    watcher = asyncio.create_task(watch())
    pending: list[asyncio.Task[None]] = []
    connector = aiohttp.TCPConnector(limit=2 * scenario.concurrency + 10)
    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(*(client(session, pending) for _ in range(scenario.concurrency)))
        posted = time.monotonic()
        await asyncio.gather(*pending)
    progress = time.monotonic()
    done = 0  # wait for every answer, or until none has come for REPLY_WAIT seconds
    while done < len(sent) and time.monotonic() - progress < REPLY_WAIT:
        await asyncio.sleep(0.05)
        if (now_done := len(tracker.answered.keys() & sent.keys())) > done:
            done, progress = now_done, time.monotonic()
    if done == len(sent):
        await asyncio.sleep(1.0)  # a second answer to the same activity would come by now
    watcher.cancel()
    tracker.poll()
    own = resource.getrusage(resource.RUSAGE_SELF)

    replies = [(tracker.answered[k] - sent[k]) * 1000 for k in sent if k in tracker.answered]
    signs = [(tracker.first_sign[k] - sent[k]) * 1000 for k in sent if k in tracker.first_sign]
    last = max((tracker.answered[k] for k in sent if k in tracker.answered), default=posted)
    wrong = [text for k in sent for text in tracker.texts.get(k, [])
             if f"echo: {questions[k]}" not in text]
    return {
        "scenario": scenario, "acks": latencies, "replies": replies, "signs": signs,
        "per_second": len(replies) / (last - min(sent.values())),
        "duplicates": sum(1 for k in sent if tracker.answers[k] > 1 or tracker.starts[k] > 1),
        "missing": sum(1 for k in sent if k not in tracker.answered),
        "non_2xx": sum(n for status, n in (statuses + again_statuses).items()
                       if not 200 <= status < 300),
        "redelivered": len(again), "again_acks": again, "again_statuses": again_statuses,
        "wrong": wrong, "failed_calls": tracker.failed_calls,
        "late": sum(1 for ms in replies if ms > REPLY_WAIT * 1000),
        "personal": sum(1 for i in range(scenario.events)
                        if i % PERSONAL_EVERY == PERSONAL_EVERY - 1),
        "bench_cpu_s": own.ru_utime + own.ru_stime - rusage.ru_utime - rusage.ru_stime,
        "post_seconds": posted - min(sent.values()),
    }


def cpu_per_activity(r: dict[str, Any]) -> float:
    """CPU of all Switchboard processes under load per activity answered (redeliveries are
    extra work, not extra answers)."""
    answered = len(r["replies"])
    return r["server_cpu_s"] * 1000 / answered if answered else float("nan")


def row(r: dict[str, Any]) -> str:
    s: Scenario = r["scenario"]
    cells = [s.name, s.events, *(f"{pct(r[k], p):.1f}" for k, p in
             (("acks", 50), ("acks", 99), ("replies", 50), ("replies", 99), ("signs", 50),
              ("signs", 99))),
             f"{r['per_second']:.1f}", r["duplicates"], r["missing"], r["non_2xx"],
             f"{cpu_per_activity(r):.1f}", f"{r['rss_mb']:.0f}"]
    return "| " + " | ".join(str(c) for c in cells) + " |"


def processes_note(r: dict[str, Any]) -> str:
    n = r["fleeting"]
    return f"; {n} short-lived helpers, not in peak RSS" if n else ""


def notes(r: dict[str, Any]) -> str:
    s: Scenario = r["scenario"]
    statuses = ", ".join(f"{n}× {status}" for status, n in sorted(r["again_statuses"].items()))
    text = (f"{s.name}: posting took {r['post_seconds']:.1f} s; under load its "
            f"{r['processes']} processes ({r['alive']} running at the end"
            f"{processes_note(r)}) used "
            f"{r['server_cpu_s']:.1f} s of CPU, this process {r['bench_cpu_s']:.1f} s; RSS "
            f"{r['ready_rss_mb']:.0f} MB when ready; {r['personal']} personal-chat "
            f"activities; {r['redelivered']} redelivered ({statuses}; HTTP p50 "
            f"{pct(r['again_acks'], 50):.1f} ms); {r['model_requests']} model requests; "
            f"{r['token_requests']} Azure AD token requests; HTTP max {max(r['acks']):.1f} ms")
    if r["late"]:
        text += f"; {r['late']} answered more than {REPLY_WAIT:.0f} s after their POST"
    if r["wrong"]:
        text += f"; {len(r['wrong'])} answers not an echo of their question, e.g. " \
                f"{r['wrong'][0][:120]!r}"
    if r["unfinished_streams"]:
        text += f"; {r['unfinished_streams']} streams never finished"
    if r["failed_calls"]:
        text += "; connector calls answered with an error: " + ", ".join(
            f"{n}× {kind} {status}" for (kind, status), n in r["failed_calls"].items())
    if r["violations"]:
        text += (f"; {len(r['violations'])} connector protocol violations "
                 f"({r['warm_violations']} in the warm-up), e.g. {r['violations'][0][:160]!r}")
    if r["left_behind"]:
        text += f"; {r['left_behind']} processes still ran after the commands exited (ended)"
    if r["stderr"]:
        text += f"; {len(r['stderr'])} warning/error lines, e.g. {r['stderr'][0][:200]!r}"
    return text


def scenarios(args: argparse.Namespace) -> list[Scenario]:
    def events(c: int) -> int:
        return args.events or (50 if args.quick else max(200, 20 * c))

    found = [] if args.slow_model_only else [
        Scenario(f"instant model, {c} {'in flight' if args.pace == 'reply' else 'concurrent'}",
                 c, events(c), pace=args.pace) for c in args.concurrency
    ]
    slow = min(events(50), 500)  # a 500 ms model answers fewer a second: longer only queues
    found += [Scenario("500 ms model, 50 concurrent", 50, slow, slow=True),
              Scenario("500 ms model, 50 in flight (reply-paced)", 50, slow, slow=True,
                       pace="reply")]
    return found


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 10, 50])
    parser.add_argument("--events", type=int,
                        help="activities per scenario (default max(200, 20×C))")
    parser.add_argument("--slow-model-only", action="store_true")
    parser.add_argument("--quick", action="store_true", help="50 activities per scenario")
    parser.add_argument("--pace", choices=["ack", "reply"], default="ack",
                        help="instant-model clients post again once the HTTP response came "
                             "(default) or once answered")
    parser.add_argument("--personal-chats", type=int, default=5,
                        help="how many 1:1 chats the personal-chat activities share (default 5)")
    parser.add_argument("--env", nargs="+", default=[], metavar="NAME=VALUE",
                        help="extra settings for the server, e.g. SWITCHBOARD_CONCURRENCY=64")
    parser.add_argument("--profile", type=Path, metavar="DIR",
                        help="sample every process with py-spy during the load, into DIR")
    parser.add_argument("--layout", choices=sorted(LAYOUTS), default="all",
                        help="Switchboard as one command (`serve`, default) or as `serve "
                             "--role web` plus `worker`")
    args = parser.parse_args()
    extra_env = dict(pair.split("=", 1) for pair in args.env)
    started = time.monotonic()
    results = []
    with ChannelIdentity() as identity, FakeLogin() as login:
        login.add_app(APP_ID, APP_SECRET, tenant=TENANT)
        for scenario in scenarios(args):
            print(f"running: {scenario.name} ({scenario.events} activities)…", file=sys.stderr)
            result = await run(scenario, identity, login, args.personal_chats, extra_env,
                               args.layout, args.profile)
            results.append(result)
            print(f"  connector violations: {len(result['violations'])}", file=sys.stderr)
            for violation in result["violations"]:
                print(f"    {violation}", file=sys.stderr)
    print("| scenario | activities | HTTP p50 ms | HTTP p99 ms | reply p50 ms | reply p99 ms "
          "| first sign p50 ms | first sign p99 ms | replies/s | duplicates | missing "
          "| non-2xx | CPU ms/activity | peak RSS MB |")
    print("|---|" + "---:|" * 13)
    for r in results:
        print(row(r))
    print()
    for r in results:
        print(f"- {notes(r)}")
    print(f"\nran {time.monotonic() - started:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    asyncio.run(main())
