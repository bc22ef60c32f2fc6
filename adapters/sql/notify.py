"""`PgSignals`: processes sharing one PostgreSQL database (on any machines) signal each
other with LISTEN/NOTIFY.

- Work: `accept` NOTIFYs `switchboard_inbox` in the transaction that records a message,
  so it is heard exactly at COMMIT; workers LISTEN and claim at once.
- Stops: `request_stop` NOTIFYs `switchboard_stop` with the item's id in the transaction
  that records the stop; the worker writing that answer ends it.
- Answers: a process where requests wait LISTENs on a channel of its own; the worker
  answering such a request NOTIFYs the events there (consecutive text deltas merged,
  long events in parts under PostgreSQL's 8,000-byte payload limit), from one connection
  so they arrive in order.

Both connections outlive a database restart: the listening one is opened again (with
back-off) once PostgreSQL drops it, and a worker told of it claims at once what came
meanwhile; the sending one is replaced when a send fails, and the send tried once more.
Notifications sent while the database is away are lost, as the database is: the answers
stay stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import Callable
from typing import Any

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from adapters.sql.units import STOP_CHANNEL, WORK_CHANNEL
from core.replies import ReplyEvent, TextDelta, event_from_json, event_to_json

log = logging.getLogger(__name__)

Deliver = Callable[[str, ReplyEvent], None]
_Queued = tuple[str, tuple[str, ReplyEvent]]  # (channel, (message key, event))
_PART = 7000  # bytes of event per notification, under the 8,000-byte payload limit
_BATCH = 200  # notifications per round trip
SEND_TIMEOUT = 10.0  # seconds: a send that hangs is a dead connection
# What a connection raises when its server is away or has closed it.
CONNECTION_GONE = (OSError, SQLAlchemyError, asyncpg.PostgresError, asyncpg.InterfaceError)


class PgSignals:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._channel = f"switchboard_reply_{uuid.uuid4().hex[:16]}"
        self._held: list[tuple[AsyncConnection, Any]] = []  # (connection, its asyncpg one)
        self._listener: Any = None  # asyncpg connection that LISTENs
        self._on_work: Callable[[], None] | None = None
        self._on_stop: Callable[[int], object] | None = None
        self._deliver: Deliver | None = None
        self._relisten: asyncio.Task[None] | None = None
        self._closing = False
        self._queue: asyncio.Queue[_Queued] = asyncio.Queue()
        self._sender: asyncio.Task[None] | None = None
        self._parts: dict[str, list[str]] = {}

    @property
    def address(self) -> str:
        return f"pg:{self._channel}"

    async def start(
        self, *, on_work: Callable[[], None] | None = None, deliver: Deliver | None = None,
        on_stop: Callable[[int], object] | None = None,
    ) -> None:
        if on_work is None and deliver is None:
            return
        self._on_work, self._deliver, self._on_stop = on_work, deliver, on_stop
        await self._listen()

    async def _listen(self) -> None:
        listener = await self._connection()
        on_work, deliver, on_stop = self._on_work, self._deliver, self._on_stop
        if on_work is not None:
            await listener.add_listener(WORK_CHANNEL, lambda *_: on_work())
        if on_stop is not None:
            await listener.add_listener(
                STOP_CHANNEL, lambda _c, _p, _ch, payload: _stop(payload, on_stop))
        if deliver is not None:
            await listener.add_listener(
                self._channel, lambda _c, _p, _ch, payload: self._received(payload, deliver)
            )
        listener.add_termination_listener(self._listener_lost)
        self._listener = listener

    def _listener_lost(self, conn: Any) -> None:
        if self._closing or conn is not self._listener or self._relisten is not None:
            return
        log.warning("lost the connection PostgreSQL notifications come on; opening another")
        self._relisten = asyncio.get_running_loop().create_task(
            self._listen_again(), name="pg-listen-again")

    async def _listen_again(self) -> None:
        pause = 0.5
        try:
            while True:
                await self._drop(self._listener)
                try:
                    await self._listen()
                except CONNECTION_GONE as e:  # the database still away: try again later
                    log.info("PostgreSQL notifications: not listening yet (%s)",
                             type(e).__name__)
                    await asyncio.sleep(pause)
                    pause = min(pause * 2, 5.0)
                    continue
                log.warning("listening for PostgreSQL notifications again")
                if self._on_work is not None:
                    self._on_work()  # messages may have come while nobody listened
                return
        finally:
            self._relisten = None

    async def aclose(self) -> None:
        self._closing = True
        if self._relisten is not None:
            self._relisten.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._relisten
        if self._sender is not None:
            await self._queue.join()  # what the worker sent still goes out
            self._sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sender
        for conn, _ in self._held:
            with contextlib.suppress(Exception):
                await conn.close()

    def work_added(self) -> None:
        """Nothing to do: `accept` NOTIFYs in its own transaction."""

    def stop_requested(self, item_id: int) -> None:
        """Nothing to do: `request_stop` NOTIFYs in its own transaction."""

    def replier(self, address: str, key: str) -> _NotifyReplier:
        if self._sender is None:
            self._sender = asyncio.create_task(self._send_all(), name="pg-reply-notify")
        return _NotifyReplier(self._queue, address.removeprefix("pg:"), key)

    async def _connection(self) -> Any:
        """A connection of its own, held until it fails (LISTEN is per session)."""
        conn = await self._engine.connect()
        driver_connection = (await conn.get_raw_connection()).driver_connection
        self._held.append((conn, driver_connection))
        return driver_connection

    async def _drop(self, driver_connection: Any) -> None:
        """Give up a connection that failed (its server went away). The listener and the
        sender may drop theirs at once: found and removed before anything is awaited."""
        dropped = [conn for conn, driver in self._held if driver is driver_connection]
        self._held = [(c, d) for c, d in self._held if d is not driver_connection]
        for conn in dropped:
            with contextlib.suppress(Exception):
                await conn.invalidate()

    async def _send_all(self) -> None:
        """One connection sends every reply notification, in order, batched."""
        sender: Any = None
        while True:
            batch = [await self._queue.get()]
            while len(batch) < _BATCH and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            rows = [row for channel, payload in _merged(batch) for row in _rows(channel, payload)]
            for attempt in (1, 2):  # the second on a new connection: the old one may be dead
                try:
                    if sender is None:
                        sender = await self._connection()
                    async with asyncio.timeout(SEND_TIMEOUT):  # TimeoutError is an OSError
                        await sender.executemany("SELECT pg_notify($1, $2)", rows)
                    break
                except Exception as e:  # this task sends every reply: it must live on
                    if sender is not None:
                        await self._drop(sender)
                        sender = None
                    if not isinstance(e, CONNECTION_GONE):
                        log.exception("could not send %d answer events", len(rows))
                    elif attempt == 2:  # one line: the database is away, and says so elsewhere
                        log.warning("could not send %d answer events (%s); they stay stored",
                                    len(rows), type(e).__name__)
            for _ in batch:
                self._queue.task_done()

    def _received(self, payload: str, deliver: Deliver) -> None:
        try:
            data = json.loads(payload)
            key = data["k"]
            if "n" in data:  # one part of a long event
                parts = self._parts.setdefault(key, [])
                parts.append(data["d"])
                if len(parts) < data["n"]:
                    return
                del self._parts[key]
                encoded = "".join(parts)
            else:
                encoded = data["e"]
            deliver(key, event_from_json(encoded))
        except (ValueError, KeyError) as e:
            log.warning("dropped a malformed answer notification: %s", type(e).__name__)


class _NotifyReplier:
    def __init__(self, queue: asyncio.Queue[_Queued], channel: str, key: str) -> None:
        self._queue = queue
        self._channel = channel
        self._key = key

    async def send(self, event: ReplyEvent) -> None:
        self._queue.put_nowait((self._channel, (self._key, event)))


def _stop(payload: str, on_stop: Callable[[int], object]) -> None:
    if payload.isdigit():
        on_stop(int(payload))
    else:
        log.warning("dropped a malformed stop notification")


def _merged(batch: list[_Queued]) -> list[_Queued]:
    """Consecutive text deltas of one answer become one notification."""
    merged: list[_Queued] = []
    for channel, (key, event) in batch:
        if merged and isinstance(event, TextDelta):
            last_channel, (last_key, last) = merged[-1]
            if (last_channel, last_key) == (channel, key) and isinstance(last, TextDelta):
                merged[-1] = (channel, (key, TextDelta(text=last.text + event.text)))
                continue
        merged.append((channel, (key, event)))
    return merged


def _rows(channel: str, item: tuple[str, ReplyEvent]) -> list[tuple[str, str]]:
    key, event = item
    encoded = event_to_json(event).decode()
    whole = json.dumps({"k": key, "e": encoded})
    if len(whole.encode()) <= _PART:
        return [(channel, whole)]
    # Cut by characters so that each part, JSON-escaped, stays under the limit (an emoji
    # outside the BMP escapes to 12 bytes).
    step = _PART // 12
    pieces = [encoded[i : i + step] for i in range(0, len(encoded), step)]
    return [
        (channel, json.dumps({"k": key, "n": len(pieces), "d": piece})) for piece in pieces
    ]
