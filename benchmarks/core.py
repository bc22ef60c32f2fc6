"""The orchestrator's own overhead per message, with an instant model, on SQLite.

Each message goes the whole way a web or terminal message goes: recorded in the inbox
(claimed at once), conversation looked up, user turn stored, history and profile loaded
concurrently, the model streamed (an in-process model that answers at once, so only our
overhead is timed), turns persisted, inbox item marked done. N conversations run
concurrently, each sending its messages one after another, as people in threads do.

    .venv/bin/python benchmarks/core.py

Target (issue 2): p50 < 5 ms and p99 < 20 ms at 50 concurrent conversations. Results
and their reading are in benchmarks/README.md.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, this file's folder comes first on sys.path and `core.py` would shadow
# the `core` package it measures.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).parent.resolve()]

import argparse
import asyncio
import random
import resource
import statistics
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

from bots.bootstrap import Switchboard, bootstrap
from bots.settings import load_settings
from core.messages import ConversationRef, InboundMessage, Sender
from core.model import ChatRequest, ModelEvent, ModelText
from core.replies import ReplyEvent


class InstantModel:
    name = "instant"

    async def stream(self, request: ChatRequest) -> AsyncIterator[ModelEvent]:
        yield ModelText(text="Answered at once.")


class DiscardingReplier:
    async def send(self, event: ReplyEvent) -> None:
        return None


def message_for(ref: ConversationRef, sender: Sender) -> InboundMessage:
    return InboundMessage(
        id=uuid.uuid4().hex,
        conversation=ref,
        sender=sender,
        text="How do I reset my VPN password?",
        sent_at=datetime.now(UTC),
        is_direct=True,
    )


async def conversation(
    sb: Switchboard, n: int, timings: list[float], *, messages: int, think: float, rng: random.Random
) -> None:
    """One person in one thread: send, wait for the answer, think, send again. With
    `think` 0 the next message goes as soon as the answer is in (a closed loop)."""
    ref = ConversationRef(channel="bench", tenant="t", conversation=f"c{n}")
    sender = Sender(id=f"bench:t:u{n}", name=f"User {n}")
    replier = DiscardingReplier()
    await asyncio.sleep(rng.uniform(0, think))  # people do not all start at once
    for _ in range(messages):
        start = time.perf_counter()
        await sb.worker.answer_now(message_for(ref, sender), replier)
        timings.append((time.perf_counter() - start) * 1000)
        if think:
            await asyncio.sleep(rng.expovariate(1 / think))


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def run(conversations: int, messages: int, think: float, data_dir: Path) -> dict[str, float]:
    settings = load_settings(data_dir=data_dir, workers=max(conversations, 1))
    rng = random.Random(7)
    async with bootstrap(settings, model=InstantModel(), open_knowledge=False) as sb:
        await conversation(sb, -1, [], messages=20, think=0, rng=rng)  # warm up
        timings: list[float] = []
        start = time.perf_counter()
        await asyncio.gather(
            *(conversation(sb, n, timings, messages=messages, think=think, rng=rng)
              for n in range(conversations))
        )
        elapsed = time.perf_counter() - start
    return {
        "p50": statistics.median(timings),
        "p99": percentile(timings, 99),
        "max": max(timings),
        "rate": len(timings) / elapsed,
        "messages": len(timings),
    }


SCENARIOS = [
    # (label, conversations, messages each, mean think time in seconds)
    ("1 conversation, back to back", 1, 200, 0.0),
    ("50 conversations, a message every ~5 s each", 50, 12, 5.0),
    ("50 conversations, a message every ~1 s each", 50, 40, 1.0),
    ("50 conversations, back to back (saturation)", 50, 20, 0.0),
]


def main() -> None:
    argparse.ArgumentParser(description=__doc__).parse_args()
    print(f"{'scenario':46} {'msgs':>5} {'p50 ms':>7} {'p99 ms':>7} {'max ms':>7} {'msg/s':>6}")
    for label, conversations, messages, think in SCENARIOS:
        with tempfile.TemporaryDirectory() as tmp:
            r = asyncio.run(run(conversations, messages, think, Path(tmp)))
        print(
            f"{label:46} {r['messages']:>5.0f} {r['p50']:>7.2f} {r['p99']:>7.2f} "
            f"{r['max']:>7.2f} {r['rate']:>6.0f}"
        )
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS {peak_mb:.0f} MB")


if __name__ == "__main__":
    main()
