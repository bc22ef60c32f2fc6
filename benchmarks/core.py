"""The answer path's storage, counted: transactions per message on each side, and the
latency of a message through the real core with an instant model.

Each message goes the way a channel message goes: `accept` (the acknowledgement side,
as a Slack event handler calls it), then the worker's claim loop: `begin_turn`, the
orchestrator with an in-process model that answers at once (so only our own work is
timed), `finish_turn`. Counted per message, on SQLite (one writer thread, group commit)
and on PostgreSQL when it is reachable:

- units: units of work run (the issue's "transactions per message": each unit is one);
- commits: transactions the database committed for them (group commit makes this fewer
  than units on SQLite under load);
- stray: any other transaction on the process's SQL engine during the run (a store
  method on the hot path that is its own transaction would show here).

    .venv/bin/python benchmarks/core.py            # SQLite, and PostgreSQL if reachable
    .venv/bin/python benchmarks/core.py --sqlite-only

Targets (issue 11): ≤ 3 transactions per message on the worker side, 1 on the ack side,
on SQLite and PostgreSQL. Results: benchmarks/README.md.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, this file's folder comes first on sys.path and `core.py` would shadow
# the `core` package it measures.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).parent.resolve()]

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime

from sqlalchemy import event, text

from adapters.metrics.prometheus import PrometheusTelemetry
from bots.bootstrap import Switchboard, bootstrap
from core.telemetry import NO_TELEMETRY
from bots.settings import load_settings
from core.inbox import Acceptance
from core.messages import ConversationRef, InboundMessage, Sender
from core.model import ChatRequest, ModelEvent, ModelText
from core.replies import ReplyEvent

POSTGRES_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"


class InstantModel:
    name = "instant"

    async def stream(self, request: ChatRequest) -> AsyncIterator[ModelEvent]:
        yield ModelText(text="Answered at once.")


class Answers:
    """The replier factory of the bench channel: notes when each message is answered."""

    def __init__(self) -> None:
        self.done: dict[str, asyncio.Future[float]] = {}

    def replier_for(self, item: object) -> Answers._Replier:
        return Answers._Replier(self, item.message.id)  # type: ignore[attr-defined]

    class _Replier:
        def __init__(self, answers: Answers, message_id: str) -> None:
            self._answers, self._id = answers, message_id

        async def send(self, event: ReplyEvent) -> None:
            if event.kind in ("done", "failed"):
                future = self._answers.done.get(self._id)
                if future is not None and not future.done():
                    future.set_result(time.perf_counter())


def mention(n: int, conversation: int) -> InboundMessage:
    """A Slack-like channel mention opening a thread of its own."""
    return InboundMessage(
        id=f"C{conversation}:{n}.{uuid.uuid4().hex[:6]}",
        conversation=ConversationRef(channel="bench", tenant="T1", conversation=f"C{conversation}",
                                     thread=f"{n}.{conversation}"),
        sender=Sender(id=f"bench:T1:U{conversation}", name=f"User {conversation}",
                      email=f"u{conversation}@example.com", time_zone="Europe/London"),
        text="How do I reset my VPN password?",
        sent_at=datetime.now(UTC),
        is_direct=False,
    )


async def run(
    database_url: str | None, conversations: int, messages: int, *, metrics: bool = False
) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        overrides = {"data_dir": Path(tmp), "bundled_docs": False}
        if database_url:
            overrides["database_url"] = database_url
        settings = load_settings(**overrides)
        answers = Answers()
        telemetry = PrometheusTelemetry(role="all") if metrics else NO_TELEMETRY
        async with bootstrap(
            settings, model=InstantModel(), open_knowledge=False, telemetry=telemetry
        ) as sb:
            sb.repliers.register("bench", answers)
            assert sb.worker is not None and sb.stores.executor is not None
            stray = _count_engine_commits(sb)
            executor = sb.stores.executor
            worker = asyncio.create_task(sb.worker.run())
            try:
                await _load(sb, answers, conversations=1, messages=20)  # warm up
                units, commits, others = Counter(executor.units), executor.commits, stray[0]
                timings = await _load(sb, answers, conversations=conversations,
                                      messages=messages)
                units = executor.units - units
                commits, others = executor.commits - commits, stray[0] - others
                if executor.__class__.__name__ == "EngineExecutor":
                    others -= commits  # PostgreSQL's executor commits on this same engine
            finally:
                worker.cancel()
                await asyncio.gather(worker, return_exceptions=True)
    n = len(timings)
    acks = units.pop("recording", 0)  # accept's unit; every other kind is the worker's
    return {
        "messages": n,
        "accept": acks / n,
        "worker": sum(units.values()) / n,
        "kinds": ", ".join(f"{kind} {count / n:.2f}" for kind, count in sorted(units.items())),
        "commits": commits / n,
        "stray": others / n,
        "p50": statistics.median(timings),
        "p99": sorted(timings)[min(n - 1, round(0.99 * (n - 1)))],
    }


def _count_engine_commits(sb: Switchboard) -> list[int]:
    """Transactions committed on the process's own engine, outside the executor."""
    counter = [0]
    engine = sb.stores.engine
    if engine is not None:
        def committed(conn: object) -> None:
            counter[0] += 1

        event.listen(engine.sync_engine, "commit", committed)
    return counter


async def _load(
    sb: Switchboard, answers: Answers, *, conversations: int, messages: int
) -> list[float]:
    """Each conversation sends a message, waits for its answer, and sends the next."""
    timings: list[float] = []

    async def conversation(c: int) -> None:
        for n in range(messages):
            message = mention(n, c)
            done = answers.done[message.id] = asyncio.get_running_loop().create_future()
            start = time.perf_counter()
            await sb.inbox.accept(Acceptance(message=message, delivery=f"T1/Ev{message.id}"))
            sb.work_added()
            answered = await done
            del answers.done[message.id]
            timings.append((answered - start) * 1000)

    await asyncio.gather(*(conversation(c) for c in range(conversations)))
    return timings


async def postgres_database() -> str | None:
    """A fresh database on the local server, or None when it does not answer."""
    from adapters.sql.engine import create_engine

    admin = create_engine(POSTGRES_URL, connect_args={"timeout": 2})
    name = f"sb_core_{uuid.uuid4().hex[:8]}"
    try:
        async with admin.connect() as conn:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text(f"CREATE DATABASE {name}"))
    except Exception:
        return None
    finally:
        await admin.dispose()
    return POSTGRES_URL.rsplit("/", 1)[0] + f"/{name}"


async def drop_postgres(url: str) -> None:
    from adapters.sql.engine import create_engine

    admin = create_engine(POSTGRES_URL)
    try:
        async with admin.connect() as conn:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text(f"DROP DATABASE IF EXISTS {url.rsplit('/', 1)[1]}"))
    finally:
        await admin.dispose()


async def migrate(url: str) -> None:
    from adapters.sql import migrate as migrations
    from adapters.sql.engine import create_engine

    engine = create_engine(url)
    try:
        await migrations.upgrade(engine)
    finally:
        await engine.dispose()


SCENARIOS = [("1 conversation", 1, 200), ("50 conversations", 50, 20)]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sqlite-only", action="store_true")
    parser.add_argument("--metrics", action="store_true",
                        help="with the Prometheus telemetry `serve` uses (default: none)")
    args = parser.parse_args()
    databases: list[tuple[str, str | None]] = [("SQLite", None)]
    pg = None if args.sqlite_only else await postgres_database()
    if pg:
        await migrate(pg)
        databases.append(("PostgreSQL", pg))
    print("| database | scenario | messages | transactions, ack side | transactions, worker "
          "side | worker's units | commits | other transactions | p50 ms | p99 ms |")
    print("|---|---|---:|---:|---:|---|---:|---:|---:|---:|")
    try:
        for name, url in databases:
            for label, conversations, messages in SCENARIOS:
                r = await run(url, conversations, messages, metrics=args.metrics)
                print(f"| {name} | {label} | {r['messages']} | {r['accept']:.2f} | "
                      f"{r['worker']:.2f} | {r['kinds']} | {r['commits']:.2f} | {r['stray']:.2f} | "
                      f"{r['p50']:.2f} | {r['p99']:.2f} |")
    finally:
        if pg:
            await drop_postgres(pg)


if __name__ == "__main__":
    asyncio.run(main())
