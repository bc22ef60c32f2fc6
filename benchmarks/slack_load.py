"""Slack under load: signed `app_mention` events against Switchboard and a yardstick, end to end.

Each bot runs as its own processes (fresh data directory per scenario and bot) against a
fake Slack Web API and a fake OpenAI-compatible model, both served from this process:
Switchboard as `switchboard serve` (`--layout all`) or as `switchboard serve --role web`
plus `switchboard worker` (`--layout split`); the yardstick, `yardstick_bolt.py`, is the
smallest correct async Bolt bot (verify, ack, stream the model, post once; no storage),
run in the same scenarios unless `--no-yardstick`.

Scenarios, each at C clients (`--concurrency`, default 50), every event a new message in
one of 20 channels:
- conversations: the instant model; each client posts, waits for its answer, posts again
  (reply-paced: at most C questions in flight).
- back-to-back: the instant model; each client posts again as soon as it is acked.
- paced: conversations with a model that takes 500 ms to its first token, then types
  100 tokens at 50 tokens/s.

Before the clock starts, one warm-up mention is answered. Recorded per event: ack latency;
reply latency (POST → `chat.stopStream`, or the posted answer: the yardstick's answer is
its `chat.postMessage`); first sign (POST → the first `assistant.threads.setStatus`,
`chat.startStream` or `chat.postMessage` in its thread). Also: replies per second
(answers / first POST → last answer), duplicates (a thread answered or streamed into
twice), missing answers (none came for 30 s), answers that are not the echo of their own
question, non-200 acks; and over every process of the bot's process trees (see
`serving.py`): CPU per answered message (between the warm-up and the last answer) and
the sum of their peak RSS.

    .venv/bin/python benchmarks/slack_load.py                  # all three scenarios
    .venv/bin/python benchmarks/slack_load.py --quick          # a smoke run, 50 events each
    .venv/bin/python benchmarks/slack_load.py --layout split --scenario paced

Targets (the issue), Switchboard against the yardstick in the same run: with the instant
model at 50 concurrent, replies/s ≥ 1.0× the yardstick's, ack p99 ≤ 100 ms, CPU per
answered message ≤ 15 ms; with the paced model at 50 conversations, reply p50 ≤ 3.0 s and
first sign p99 ≤ 300 ms; peak RSS of all processes ≤ 200 MB; zero duplicates, zero
missing. Results: benchmarks/README.md.
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
import copy
import functools
import hashlib
import hmac
import itertools
import json
import math
import resource
import shutil
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from benchmarks.serving import LAYOUTS, YARDSTICK, Command, pct, profiled, serve
from tests.fakes.openai_server import FakeOpenAI, Paced
from tests.fakes.slack_api import Call, FakeSlack

FIXTURE = HERE.parent / "tests/fixtures/slack/sdk_socketmode_envelope_events_api_app_mention.json"
SECRET, BOT_TOKEN = "8f742231b10e8888abcd99yyyzzz85a5", "xoxb-bench-0123456789"
TEAM, BOT_USER, BOT_ID, ASKER = "T111", "U111", "B111", "U222"
CHANNELS = [f"CBENCH{n:02d}" for n in range(20)]
WARM_UP = ("CWARMUP", "1690000000.000001")
PACED_MODEL = Paced(first_token=0.5, tokens=100, rate=50)
REPLY_WAIT = 30.0
# paced-back-to-back is not a default: it builds a backlog of turns waiting on the model,
# for finding where memory grows with them.
SCENARIOS = ("conversations", "back-to-back", "paced", "paced-back-to-back")
YARDSTICK_BOT = "yardstick"
Thread = tuple[str, str]  # (channel, thread root ts)


@dataclass
class Scenario:
    name: str
    concurrency: int
    events: int
    pace: str  # "ack": post again once acked; "reply": once answered
    model: Paced | None = None  # None: the instant model


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
                    self.first_sign.setdefault(thread, call.at)
                else:  # stopStream names the stream's message: its thread is in the fake
                    message = self.slack.messages.get((body["channel"], str(body["ts"])))
                    thread = (body["channel"], str(message.thread_ts if message else None))
                self.answers[thread] += 1
                self.answered.setdefault(thread, call.at)


@functools.cache
def template() -> dict[str, Any]:
    return json.loads(FIXTURE.read_text())["payload"]  # type: ignore[no-any-return]


def mention(i: int) -> tuple[Thread, str, str]:
    """App mention number i: its own ts and event id, in one of 20 channels. Returns
    (thread, question, JSON body)."""
    ts, channel = f"{1_700_000_000 + i}.{i % 1_000_000:06d}", CHANNELS[i % len(CHANNELS)]
    return (channel, ts), f"question {i}", event_body(channel, ts, f"question {i}",
                                                      f"EvBENCH{i:08d}")


def event_body(channel: str, ts: str, question: str, event_id: str) -> str:
    body = copy.deepcopy(template())
    body["event"].update(text=f"<@{BOT_USER}> {question}", ts=ts, event_ts=ts, channel=channel)
    body["event_id"] = event_id
    return json.dumps(body)


def signed(body: str) -> dict[str, str]:
    ts = str(int(time.time()))
    digest = hmac.new(SECRET.encode(), f"v0:{ts}:{body}".encode(), hashlib.sha256).hexdigest()
    return {"Content-Type": "application/json", "X-Slack-Request-Timestamp": ts,
            "X-Slack-Signature": f"v0={digest}"}


def is_echo(text: str, question: str) -> bool:
    """The fake model's answer to `question`: its echo, then (paced) filler words."""
    expected = f"echo: {question}"
    return text == expected or text.startswith(expected + " ")


async def run(scenario: Scenario, bot: str, commands: tuple[Command, ...],
              extra_env: dict[str, str], profile: Path | None = None) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="switchboard-slack-load-"))
    try:
        async with FakeSlack(team_id=TEAM, bot_user_id=BOT_USER, bot_id=BOT_ID) as slack, \
                FakeOpenAI(model="fake-model", default=scenario.model) as llm:
            slack.add_user(ASKER, name="ada", real_name="Ada Lovelace", email="ada@example.com")
            env = dict(SLACK_BOT_TOKEN=BOT_TOKEN, SLACK_SIGNING_SECRET=SECRET,
                       SLACK_API_URL=slack.base_url, OPENAI_BASE_URL=llm.base_url,
                       OPENAI_API_KEY="sk-bench-0123456789", SWITCHBOARD_MODEL="fake-model",
                       SWITCHBOARD_LOG_LEVEL="WARNING",
                       **(extra_env if bot != YARDSTICK_BOT else {}))
            async with serve(commands, env, workdir) as served:
                events_url = f"{served.url}/slack/events"
                tracker = Tracker(slack)
                await warm_up(tracker, events_url)
                warm = served.sample()
                label = "-".join((scenario.pace, "paced" if scenario.model else "instant",
                                  "yardstick" if bot == YARDSTICK_BOT else "switchboard"))
                async with profiled(served, profile, label):
                    result = await load(scenario, tracker, events_url)
                end = served.sample()
                served.check_alive()
            result.update(
                bot=bot, cpu_s=end.cpu_s - warm.cpu_s, peak_rss_mb=end.peak_rss_mb,
                warm_rss_mb=warm.rss_mb, processes=end.processes, alive=end.alive,
                fleeting=end.fleeting,
                stderr=served.problems(), model_requests=len(llm.requests),
                left_behind=served.left_behind,
            )
            return result
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


async def warm_up(tracker: Tracker, events_url: str) -> None:
    """One mention, answered before the clock starts (first connections, lazy set-up)."""
    body = event_body(*WARM_UP, "warm-up", "EvWARMUP")
    async with aiohttp.ClientSession() as session, \
            session.post(events_url, data=body.encode(), headers=signed(body)) as r:
        if r.status != 200:
            raise RuntimeError(f"the warm-up mention got HTTP {r.status}: {await r.text()}")
    deadline = time.monotonic() + REPLY_WAIT
    while WARM_UP not in tracker.answered:
        if time.monotonic() > deadline:
            raise RuntimeError(f"the warm-up mention was not answered in {REPLY_WAIT:.0f} s")
        await asyncio.sleep(0.01)
        tracker.poll()


async def load(scenario: Scenario, tracker: Tracker, events_url: str) -> dict[str, Any]:
    slack = tracker.slack
    sent: dict[Thread, float] = {}
    questions: dict[Thread, str] = {WARM_UP: "warm-up"}
    acks: list[float] = []
    statuses: Counter[int] = Counter()
    numbers = itertools.count()
    answered = asyncio.Event()

    async def client(session: aiohttp.ClientSession) -> None:
        while (i := next(numbers)) < scenario.events:
            thread, question, body = mention(i)
            headers = signed(body)
            questions[thread] = question
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
    wrong = [m.text for m in slack.messages.values() if not m.streaming and not is_echo(
        m.text, questions.get((m.channel, str(m.thread_ts)), "(no question in this thread)"))]
    return {
        "scenario": scenario, "acks": acks, "replies": replies, "signs": signs,
        "per_second": len(replies) / max(last - min(sent.values()), 1e-9),
        "duplicates": sum(1 for t in sent if tracker.answers[t] > 1 or tracker.starts[t] > 1),
        "missing": sum(1 for t in sent if t not in tracker.answered),
        "non_200": sum(n for status, n in statuses.items() if status != 200),
        "wrong": wrong, "stuck_streams": sum(1 for m in slack.messages.values() if m.streaming),
        "bench_cpu_s": own.ru_utime + own.ru_stime - rusage.ru_utime - rusage.ru_stime,
        "post_seconds": posted - min(sent.values()),
    }


def cpu_per_answer(r: dict[str, Any]) -> float:
    return r["cpu_s"] * 1000 / len(r["replies"]) if r["replies"] else math.nan


HEADER = ("| scenario | bot | events | ack p50 ms | ack p99 ms | reply p50 ms | reply p99 ms "
          "| first sign p50 ms | first sign p99 ms | replies/s | × yardstick | duplicates "
          "| missing | non-200 | CPU ms/answer | peak RSS MB |")


def row(r: dict[str, Any], yardstick: dict[str, Any] | None) -> str:
    s: Scenario = r["scenario"]
    if "error" in r:
        return f"| {s.name} | {r['bot']} | {s.events} | failed: {r['error'][:200]} |"
    ratio = (f"{r['per_second'] / yardstick['per_second']:.2f}"
             if yardstick is not None and "error" not in yardstick else "–")
    cells = [s.name, r["bot"], s.events, *(f"{pct(r[k], p):.1f}" for k, p in
             (("acks", 50), ("acks", 99), ("replies", 50), ("replies", 99), ("signs", 50),
              ("signs", 99))),
             f"{r['per_second']:.1f}", ratio, r["duplicates"], r["missing"], r["non_200"],
             f"{cpu_per_answer(r):.1f}", f"{r['peak_rss_mb']:.0f}"]
    return "| " + " | ".join(str(c) for c in cells) + " |"


def processes_note(r: dict[str, Any]) -> str:
    n = r["fleeting"]
    return f"; {n} short-lived helpers, not in peak RSS" if n else ""


def notes(r: dict[str, Any]) -> str:
    s: Scenario = r["scenario"]
    if "error" in r:
        return f"{s.name}, {r['bot']}: failed: {r['error']}"
    text = (f"{s.name}, {r['bot']}: posting took {r['post_seconds']:.1f} s; under load its "
            f"{r['processes']} processes ({r['alive']} running at the end"
            f"{processes_note(r)}) used "
            f"{r['cpu_s']:.1f} s of CPU, this process {r['bench_cpu_s']:.1f} s; RSS "
            f"{r['warm_rss_mb']:.0f} MB after the warm-up; "
            f"{r['model_requests']} model requests; ack max {max(r['acks']):.1f} ms")
    if r["wrong"]:
        text += f"; {len(r['wrong'])} answers not the echo of their question, e.g. " \
                f"{r['wrong'][0][:120]!r}"
    if r["stuck_streams"]:
        text += f"; {r['stuck_streams']} streams never stopped"
    if r["left_behind"]:
        text += f"; {r['left_behind']} processes still ran after the commands exited (ended)"
    if r["stderr"]:
        text += f"; {len(r['stderr'])} warning/error lines, e.g. {r['stderr'][0][:200]!r}"
    return text


def verdicts(r: dict[str, Any], yardstick: dict[str, Any] | None) -> list[str]:
    """The issue's targets that apply to this scenario, met or not (Switchboard rows)."""
    s: Scenario = r["scenario"]
    if "error" in r:
        return [f"{s.name}: no result"]
    checks: list[tuple[str, bool]] = []
    if s.model is None:
        if yardstick is not None and "error" not in yardstick:
            ratio = r["per_second"] / yardstick["per_second"]
            checks.append((f"replies/s ≥ 1.0× the yardstick's ({ratio:.2f}×)", ratio >= 1.0))
        checks += [(f"ack p99 ≤ 100 ms ({pct(r['acks'], 99):.0f})", pct(r["acks"], 99) <= 100),
                   (f"CPU per answer ≤ 15 ms ({cpu_per_answer(r):.1f})",
                    cpu_per_answer(r) <= 15)]
    else:
        checks += [(f"reply p50 ≤ 3.0 s ({pct(r['replies'], 50) / 1000:.2f})",
                    pct(r["replies"], 50) <= 3000),
                   (f"first sign p99 ≤ 300 ms ({pct(r['signs'], 99):.0f})",
                    pct(r["signs"], 99) <= 300)]
    checks += [(f"peak RSS ≤ 200 MB ({r['peak_rss_mb']:.0f})", r["peak_rss_mb"] <= 200),
               (f"zero duplicates ({r['duplicates']})", r["duplicates"] == 0),
               (f"zero missing ({r['missing']})", r["missing"] == 0),
               (f"every answer the echo of its question ({len(r['wrong'])} not)", not r["wrong"])]
    met = [text for text, ok in checks if ok]
    missed = [text for text, ok in checks if not ok]
    return [f"{s.name}: " + ("**not met**: " + "; ".join(missed) + ". " if missed else "")
            + ("met: " + "; ".join(met) if met else "")]


def scenarios(args: argparse.Namespace) -> list[Scenario]:
    def events(c: int) -> int:
        return args.events or (50 if args.quick else max(200, 20 * c))

    model = PACED_MODEL
    paced = (f"paced model ({model.first_token * 1000:.0f} ms, {model.tokens} tokens at "
             f"{model.rate:.0f}/s)")
    found = []
    for c in args.concurrency:
        if "conversations" in args.scenario:
            found.append(Scenario(f"instant model, {c} conversations", c, events(c), "reply"))
        if "back-to-back" in args.scenario:
            found.append(Scenario(f"instant model, {c} back to back", c, events(c), "ack"))
        if "paced" in args.scenario:  # ~20 answers/s at 50: a longer run adds little
            found.append(Scenario(f"{paced}, {c} conversations", c,
                                  args.events or min(events(c), 500), "reply", model))
        if "paced-back-to-back" in args.scenario:
            found.append(Scenario(f"{paced}, {c} back to back", c,
                                  args.events or min(events(c), 1000), "ack", model))
    return found


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--layout", choices=sorted(LAYOUTS), default="all",
                        help="Switchboard as one command (`serve`, default) or as `serve "
                             "--role web` plus `worker`")
    bots_wanted = parser.add_mutually_exclusive_group()
    bots_wanted.add_argument("--no-yardstick", action="store_true",
                             help="do not run the yardstick Bolt bot")
    bots_wanted.add_argument("--yardstick-only", action="store_true",
                             help="run the yardstick alone, not Switchboard")
    parser.add_argument("--scenario", nargs="+", choices=SCENARIOS, default=list(SCENARIOS[:3]))
    parser.add_argument("--slow-model-only", action="store_true",
                        help="the same as --scenario paced")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[50])
    parser.add_argument("--events", type=int,
                        help="events per scenario (default: max(200, 20×C), at most 500 for paced)")
    parser.add_argument("--quick", action="store_true", help="50 events per scenario")
    parser.add_argument("--env", nargs="+", default=[], metavar="NAME=VALUE",
                        help="extra settings for Switchboard, e.g. SWITCHBOARD_CONCURRENCY=64")
    parser.add_argument("--profile", type=Path, metavar="DIR",
                        help="sample every process with py-spy during the load, into DIR")
    args = parser.parse_args()
    if args.slow_model_only:
        args.scenario = ["paced"]
    extra_env = dict(pair.split("=", 1) for pair in args.env)
    switchboard = f"switchboard ({args.layout})"
    bots = [] if args.yardstick_only else [(switchboard, LAYOUTS[args.layout])]
    if not args.no_yardstick:
        bots.append((YARDSTICK_BOT, YARDSTICK))
    started = time.monotonic()
    results: list[tuple[dict[str, Any], dict[str, Any] | None]] = []
    for scenario in scenarios(args):
        by_bot: dict[str, dict[str, Any]] = {}
        for bot, commands in bots:
            print(f"running: {scenario.name}, {bot} ({scenario.events} events)…",
                  file=sys.stderr)
            try:
                by_bot[bot] = await run(scenario, bot, commands, extra_env, args.profile)
            except Exception as e:  # noqa: BLE001 - reported in the table; the others still run
                print(f"  {bot} failed: {e!r}", file=sys.stderr)
                by_bot[bot] = {"scenario": scenario, "bot": bot, "error": repr(e)}
        yardstick = by_bot.get(YARDSTICK_BOT)
        results += [(r, yardstick) for r in by_bot.values()]
    print(HEADER)
    print("|---|---|" + "---:|" * 14)
    for r, yardstick in results:
        print(row(r, None if r["bot"] == YARDSTICK_BOT else yardstick))
    print()
    for r, _ in results:
        print(f"- {notes(r)}")
    if not args.yardstick_only:
        print("\nTargets (the issue), Switchboard:")
    for r, yardstick in results:
        if r["bot"] != YARDSTICK_BOT:
            for line in verdicts(r, yardstick):
                print(f"- {line}")
    print(f"\nran {time.monotonic() - started:.0f} s", file=sys.stderr)
    if any("error" in r for r, _ in results):
        sys.exit(1)


if __name__ == "__main__":
    asyncio.run(main())
