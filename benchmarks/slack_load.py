"""Slack under load: signed `app_mention` events against `switchboard serve`, end to end.

`switchboard serve` runs as its own process (fresh data directory per scenario) against a
fake Slack Web API and a fake OpenAI-compatible model, both served from this process.
C clients post signed events back to back: each waits for the HTTP ack, never for the
answer, before posting the next (`--pace reply`: each waits for its answer too, so at
most C questions are in flight). Every event is a new message in one of 20 channels.
Recorded per event: ack latency; reply latency (POST → `chat.stopStream`, or the posted
answer when streaming falls back); first sign of life (POST → the first
`assistant.threads.setStatus` or `chat.startStream`). Also: replies per second (answers
/ first POST → last answer), duplicate answers (a thread answered or streamed into twice),
missing answers (none came for 30 s), non-200 acks, the server's peak RSS (VmHWM) and CPU.

    .venv/bin/python benchmarks/slack_load.py            # instant model at 1, 10, 50; slow at 50
    .venv/bin/python benchmarks/slack_load.py --quick    # a smoke run

Targets (the Slack issue): ack p99 < 100 ms at 50 concurrent, ≥ 85 replies/s with an
instant model, peak RSS ≤ 150 MB, zero duplicates; with a model taking 500 ms to its first
token, first sign of life p99 < 300 ms at 50 concurrent. Results: benchmarks/README.md.
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
import copy
import functools
import hashlib
import hmac
import itertools
import json
import resource
import shutil
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from benchmarks.serving import pct, proc_stat, switchboard_serve
from tests.fakes.openai_server import FakeOpenAI, Hang
from tests.fakes.slack_api import Call, FakeSlack

FIXTURE = HERE.parent / "tests/fixtures/slack/sdk_socketmode_envelope_events_api_app_mention.json"
SECRET, BOT_TOKEN = "8f742231b10e8888abcd99yyyzzz85a5", "xoxb-bench-0123456789"
TEAM, BOT_USER, BOT_ID, ASKER = "T111", "U111", "B111", "U222"
CHANNELS = [f"CBENCH{n:02d}" for n in range(20)]
SLOW_FIRST_TOKEN = 0.5
REPLY_WAIT = 30.0
Thread = tuple[str, str]  # (channel, thread root ts)


@dataclass
class Scenario:
    name: str
    concurrency: int
    events: int
    slow: bool = False
    pace: str = "ack"  # "ack": post again once acked; "reply": once answered


@dataclass
class Tracker:
    """Follows the fake Slack's call log: first sign of life, answers and stream starts
    per thread. `poll` reads only the calls that arrived since the last poll."""

    slack: FakeSlack
    seen: int = 0
    first_sign: dict[Thread, float] = field(default_factory=dict)
    answered: dict[Thread, float] = field(default_factory=dict)
    answers: Counter[Thread] = field(default_factory=Counter)
    starts: Counter[Thread] = field(default_factory=Counter)

    def poll(self) -> None:
        calls = self.slack.calls
        for call in calls[self.seen :]:
            self._see(call)
        self.seen = len(calls)

    def _see(self, call: Call) -> None:
        body = call.body
        match call.method:
            case "assistant.threads.setStatus":
                self.first_sign.setdefault((body["channel_id"], str(body["thread_ts"])), call.at)
            case "chat.startStream":
                thread = (body["channel"], str(body["thread_ts"]))
                self.first_sign.setdefault(thread, call.at)
                self.starts[thread] += 1
            case "chat.stopStream" | "chat.postMessage":
                if call.method == "chat.postMessage":
                    thread = (body["channel"], str(body.get("thread_ts")))
                else:  # stopStream names the stream's message: its thread is in the fake
                    message = self.slack.messages.get((body["channel"], str(body["ts"])))
                    thread = (body["channel"], str(message.thread_ts if message else None))
                self.answers[thread] += 1
                self.answered.setdefault(thread, call.at)


@functools.cache
def template() -> dict[str, Any]:
    return json.loads(FIXTURE.read_text())["payload"]  # type: ignore[no-any-return]


def mention(i: int) -> tuple[Thread, str]:
    """App mention number i: its own ts and event id, in one of 20 channels."""
    body = copy.deepcopy(template())
    ts, channel = f"{1_700_000_000 + i}.{i % 1_000_000:06d}", CHANNELS[i % len(CHANNELS)]
    body["event"].update(text=f"<@{BOT_USER}> question {i}", ts=ts, event_ts=ts, channel=channel)
    body["event_id"] = f"EvBENCH{i:08d}"
    return (channel, ts), json.dumps(body)


def signed(body: str) -> dict[str, str]:
    ts = str(int(time.time()))
    digest = hmac.new(SECRET.encode(), f"v0:{ts}:{body}".encode(), hashlib.sha256).hexdigest()
    return {"Content-Type": "application/json", "X-Slack-Request-Timestamp": ts,
            "X-Slack-Signature": f"v0={digest}"}


@contextlib.asynccontextmanager
async def switchboard(  # type: ignore[no-untyped-def]
    slack: FakeSlack, llm: FakeOpenAI, workdir: Path, extra_env: dict[str, str]
):
    """`switchboard serve` configured for Slack against the fakes."""
    env = dict(SLACK_BOT_TOKEN=BOT_TOKEN, SLACK_SIGNING_SECRET=SECRET,
               SLACK_API_URL=slack.base_url, OPENAI_BASE_URL=llm.base_url,
               OPENAI_API_KEY="sk-bench-0123456789", SWITCHBOARD_MODEL="fake-model",
               SWITCHBOARD_LOG_LEVEL="WARNING", **extra_env)
    async with switchboard_serve(env, workdir) as served:
        yield served


async def run(scenario: Scenario, extra_env: dict[str, str]) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="switchboard-slack-load-"))
    try:
        async with FakeSlack(team_id=TEAM, bot_user_id=BOT_USER, bot_id=BOT_ID) as slack, \
                FakeOpenAI(model="fake-model") as llm:
            slack.add_user(ASKER, name="ada", real_name="Ada Lovelace", email="ada@example.com")
            if scenario.slow:  # every request waits before its first byte, then echoes
                llm.script(*[Hang(seconds=SLOW_FIRST_TOKEN)] * (scenario.events * 3))
            async with switchboard(slack, llm, workdir, extra_env) as (server, url, stderr_path):
                _, ready_rss, ready_cpu = proc_stat(server.pid)
                result = await load(scenario, slack, f"{url}/slack/events")
                result["rss_mb"], _, cpu = proc_stat(server.pid)
                result["ready_rss_mb"], result["server_cpu_s"] = ready_rss, cpu - ready_cpu
                if server.returncode is not None:
                    raise RuntimeError(f"switchboard serve died with {server.returncode}")
            problems = [line for line in stderr_path.read_text(errors="replace").splitlines()
                        if any(word in line for word in ("WARNING", "ERROR", "Traceback"))]
            result["stderr"] = problems
            result["model_requests"] = len(llm.requests)
            return result
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


async def load(scenario: Scenario, slack: FakeSlack, events_url: str) -> dict[str, Any]:
    tracker = Tracker(slack)
    sent: dict[Thread, float] = {}
    acks: list[float] = []
    statuses: Counter[int] = Counter()
    numbers = itertools.count()
    answered = asyncio.Event()

    async def client(session: aiohttp.ClientSession) -> None:
        while (i := next(numbers)) < scenario.events:
            thread, body = mention(i)
            headers = signed(body)
            sent[thread] = start = time.monotonic()
            async with session.post(events_url, data=body.encode(), headers=headers) as r:
                await r.read()
            acks.append((time.monotonic() - start) * 1000)
            statuses[r.status] += 1
            while scenario.pace == "reply" and thread not in tracker.answered:
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
    connector = aiohttp.TCPConnector(limit=scenario.concurrency + 10)
    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(*(client(session) for _ in range(scenario.concurrency)))
    posted = progress = time.monotonic()
    done = 0  # wait for every answer, or until none has come for REPLY_WAIT seconds
    while done < len(sent) and time.monotonic() - progress < REPLY_WAIT:
        await asyncio.sleep(0.05)
        if (now_done := len(tracker.answered.keys() & sent.keys())) > done:
            done, progress = now_done, time.monotonic()
    watcher.cancel()
    tracker.poll()
    own = resource.getrusage(resource.RUSAGE_SELF)

    replies = [(tracker.answered[t] - sent[t]) * 1000 for t in sent if t in tracker.answered]
    signs = [(tracker.first_sign[t] - sent[t]) * 1000 for t in sent if t in tracker.first_sign]
    last = max((tracker.answered[t] for t in sent if t in tracker.answered), default=posted)
    wrong = [m.text for m in slack.messages.values()
             if not m.streaming and not m.text.startswith("echo: question")]
    return {
        "scenario": scenario, "acks": acks, "replies": replies, "signs": signs,
        "per_second": len(replies) / (last - min(sent.values())),
        "duplicates": sum(1 for t in sent if tracker.answers[t] > 1 or tracker.starts[t] > 1),
        "missing": sum(1 for t in sent if t not in tracker.answered),
        "non_200": sum(n for status, n in statuses.items() if status != 200),
        "wrong": wrong, "stuck_streams": sum(1 for m in slack.messages.values() if m.streaming),
        "bench_cpu_s": own.ru_utime + own.ru_stime - rusage.ru_utime - rusage.ru_stime,
        "post_seconds": posted - min(sent.values()),
    }


def row(r: dict[str, Any]) -> str:
    s: Scenario = r["scenario"]
    cells = [s.name, s.events, *(f"{pct(r[k], p):.1f}" for k, p in
             (("acks", 50), ("acks", 99), ("replies", 50), ("replies", 99), ("signs", 50),
              ("signs", 99))),
             f"{r['per_second']:.1f}", r["duplicates"], r["missing"], r["non_200"],
             f"{r['rss_mb']:.0f}"]
    return "| " + " | ".join(str(c) for c in cells) + " |"


def notes(r: dict[str, Any]) -> str:
    s: Scenario = r["scenario"]
    text = (f"{s.name}: posting took {r['post_seconds']:.1f} s; under load the server used "
            f"{r['server_cpu_s']:.1f} s of CPU, this process {r['bench_cpu_s']:.1f} s; RSS "
            f"{r['ready_rss_mb']:.0f} MB when ready; "
            f"{r['model_requests']} model requests; ack max {max(r['acks']):.1f} ms")
    if r["wrong"]:
        text += f"; {len(r['wrong'])} answers not an echo, e.g. {r['wrong'][0][:120]!r}"
    if r["stuck_streams"]:
        text += f"; {r['stuck_streams']} streams never stopped"
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
    slow = min(events(50), 500)  # ~20 answers/s: a longer run only adds to the queue
    found += [Scenario("500 ms model, 50 concurrent", 50, slow, slow=True),
              Scenario("500 ms model, 50 in flight (reply-paced)", 50, slow, slow=True,
                       pace="reply")]
    return found


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 10, 50])
    parser.add_argument("--events", type=int, help="events per scenario (default max(200, 20×C))")
    parser.add_argument("--slow-model-only", action="store_true")
    parser.add_argument("--quick", action="store_true", help="50 events per scenario")
    parser.add_argument("--pace", choices=["ack", "reply"], default="ack",
                        help="instant-model clients post again once acked (default) or answered")
    parser.add_argument("--env", nargs="+", default=[], metavar="NAME=VALUE",
                        help="extra settings for the server, e.g. SWITCHBOARD_WORKERS=64")
    args = parser.parse_args()
    extra_env = dict(pair.split("=", 1) for pair in args.env)
    results = []
    for scenario in scenarios(args):
        print(f"running: {scenario.name} ({scenario.events} events)…", file=sys.stderr)
        results.append(await run(scenario, extra_env))
    print("| scenario | events | ack p50 ms | ack p99 ms | reply p50 ms | reply p99 ms "
          "| first sign p50 ms | first sign p99 ms | replies/s | duplicates | missing "
          "| non-200 | peak RSS MB |")
    print("|---|" + "---:|" * 12)
    for r in results:
        print(row(r))
    print()
    for r in results:
        print(f"- {notes(r)}")


if __name__ == "__main__":
    asyncio.run(main())
