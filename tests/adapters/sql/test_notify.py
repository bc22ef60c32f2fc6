"""`PgSignals`: answer events from a worker process reach the web process where the request
waits, through PostgreSQL NOTIFY — also after the server dropped a worker's connections,
its listener's and its sender's at once (skipped when PostgreSQL is not reachable). Each
instance stands for a process."""

from __future__ import annotations

import asyncio

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.sql.notify import PgSignals
from adapters.sql.units import STOP_CHANNEL
from core.replies import ReplyEvent, ReplyWithdrawn, TextDelta


async def test_events_still_arrive_after_the_server_dropped_the_senders_connections(
    pg_engines: list[AsyncEngine],
) -> None:
    web, worker = PgSignals(pg_engines[0]), PgSignals(pg_engines[1])
    received: asyncio.Queue[tuple[str, ReplyEvent]] = asyncio.Queue()
    await web.start(deliver=lambda key, event: received.put_nowait((key, event)))
    # The worker's sender also listens (a worker process hears new work), like a worker.
    await worker.start(on_work=lambda: None)
    replier = worker.replier(web.address, "m1")
    try:
        await replier.send(TextDelta(text="before"))
        assert await asyncio.wait_for(received.get(), 10) == ("m1", TextDelta(text="before"))

        # The worker's sessions end at once (as in a restart): its listener and its
        # sender each replace theirs, concurrently.
        pids = [driver.get_server_pid() for _, driver in worker._held]
        assert len(pids) == 2
        async with pg_engines[2].connect() as admin:
            for pid in pids:
                await admin.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
            await admin.commit()
        for n in range(20):  # some are sent while the connections are being replaced
            await replier.send(TextDelta(text=f"after {n}"))
            await asyncio.sleep(0.05)
        await replier.send(ReplyWithdrawn())

        got: list[ReplyEvent] = []
        while not got or got[-1] != ReplyWithdrawn():
            got.append((await asyncio.wait_for(received.get(), 15))[1])
        text_after = "".join(e.text for e in got if isinstance(e, TextDelta))
        assert text_after == "".join(f"after {n}" for n in range(20))
    finally:
        await worker.aclose()
        await web.aclose()


async def test_a_worker_hears_of_a_stopped_answer_from_another_process(
    pg_engines: list[AsyncEngine],
) -> None:
    """`request_stop` NOTIFYs the stop channel with the item's id (in its transaction);
    every worker hears it, and a malformed payload is dropped."""
    worker = PgSignals(pg_engines[0])
    stopped: asyncio.Queue[int] = asyncio.Queue()
    await worker.start(on_work=lambda: None, on_stop=stopped.put_nowait)
    try:
        async with pg_engines[1].begin() as web:
            await web.execute(text("SELECT pg_notify(:c, 'not an id')"), {"c": STOP_CHANNEL})
            await web.execute(text("SELECT pg_notify(:c, '42')"), {"c": STOP_CHANNEL})
        assert await asyncio.wait_for(stopped.get(), 10) == 42
        assert stopped.empty()
    finally:
        await worker.aclose()
