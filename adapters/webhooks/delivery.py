"""`TicketWebhook`: a ticket listener that never blocks the chat.

The listener only serializes the change and puts it on a bounded in-memory queue; one
background task owned by the webhook POSTs the deliveries in order. Each attempt has a
timeout. Connection errors, timeouts, 429 and 5xx are retried with exponential backoff
and jitter (a longer `Retry-After` wins); any other answer is final; after
`RetryPolicy.attempts` the delivery is given up and logged with its id.

When the queue is full the *oldest* delivery is dropped: every event carries the whole
ticket, so the newest ones are worth the most to a receiver that is catching up.

Deliveries are in memory: those still queued when the process crashes are lost, and on
a clean shutdown only what can be sent within `drain_seconds` is (each once, without
retries); what is left is logged by id. Receivers that must not miss a change should
also reconcile through `GET /api/v1/tickets`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Literal, Self
from urllib.parse import urlsplit

import aiohttp

from adapters.webhooks.payload import encode, event_name, payload
from adapters.webhooks.signing import DELIVERY_HEADER, EVENT_HEADER, sign
from core.retry import retry_after_seconds
from core.tickets.model import TicketChange

log = logging.getLogger(__name__)

USER_AGENT = "Switchboard-Webhook/1"


@dataclass(frozen=True, kw_only=True, slots=True)
class Delivery:
    id: str  # X-Switchboard-Delivery: the same on every attempt
    event: str
    ticket: str
    body: bytes


@dataclass(frozen=True, kw_only=True, slots=True)
class RetryPolicy:
    attempts: int = 6  # about a minute of retries with the defaults
    backoff: float = 1.0  # the first pause; doubled after each failure
    max_backoff: float = 30.0
    max_retry_after: float = 300.0  # a receiver asking for longer is waited on this long

    def delay(self, attempt: int, retry_after: float | None, rng: Callable[[], float]) -> float:
        """The pause after failed `attempt` (1-based): half to all of the backoff."""
        backoff = min(self.max_backoff, self.backoff * 2.0 ** (attempt - 1))
        pause = backoff * (0.5 + rng() / 2)
        if retry_after is not None:
            pause = max(pause, min(retry_after, self.max_retry_after))
        return pause


@dataclass(frozen=True, slots=True)
class _Outcome:
    verdict: Literal["delivered", "retry", "refused"]
    detail: str
    retry_after: float | None = None


class TicketWebhook:
    """Listener for `TicketService.subscribe`; `async with` it to run its sender."""

    def __init__(
        self, url: str, secret: str, session: aiohttp.ClientSession, *,
        timeout: float = 10.0, queue_size: int = 1000, retry: RetryPolicy = RetryPolicy(),
        drain_seconds: float = 5.0, clock: Callable[[], float] = time.time,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self._url = url
        self._secret = secret
        self._session = session
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._queue: asyncio.Queue[Delivery] = asyncio.Queue(maxsize=queue_size)
        self._retry = retry
        self._drain_seconds = drain_seconds
        self._clock = clock
        self._rng = rng
        self._closing = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._current: Delivery | None = None
        self.host = urlsplit(url).hostname or "?"  # never log the whole URL: it may hold a token

    def __repr__(self) -> str:
        return f"TicketWebhook(host={self.host!r})"

    # ----- the listener: enqueue only -----

    async def __call__(self, change: TicketChange) -> None:
        delivery = Delivery(
            id=str(uuid.uuid4()), event=event_name(change), ticket=change.ticket.number,
            body=encode(payload(change, datetime.now(UTC))),
        )
        if self._closing.is_set():
            log.warning("ticket webhook is shut down; dropped %s of %s (delivery %s)",
                        delivery.event, delivery.ticket, delivery.id)
            return
        if self._queue.full():
            oldest = self._queue.get_nowait()
            self._queue.task_done()
            log.warning("ticket webhook queue is full (%d): dropped the oldest, %s of %s "
                        "(delivery %s)", self._queue.maxsize, oldest.event, oldest.ticket,
                        oldest.id)
        self._queue.put_nowait(delivery)

    @property
    def pending(self) -> int:
        """Deliveries queued or being sent."""
        return self._queue.qsize() + (self._current is not None)

    async def join(self) -> None:
        """Wait until every queued delivery was delivered or given up on."""
        await self._queue.join()

    # ----- lifecycle -----

    async def __aenter__(self) -> Self:
        self.start()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def start(self) -> None:
        if self._task is None:
            log.info("ticket webhooks go to %s", self.host)
            self._task = asyncio.create_task(self._run(), name="ticket-webhook")

    async def aclose(self) -> None:
        """Send what can be sent within `drain_seconds` (no more retries), then stop."""
        self._closing.set()
        task, self._task = self._task, None
        if task is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._drain_seconds):
                    await self._queue.join()
        unsent = ([self._current] if self._current else []) + self._drain_queue()
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if unsent:
            log.warning("ticket webhook stopped with %d deliveries unsent: %s", len(unsent),
                        ", ".join(f"{d.id} ({d.event} {d.ticket})" for d in unsent))

    def _drain_queue(self) -> list[Delivery]:
        left: list[Delivery] = []
        while not self._queue.empty():
            left.append(self._queue.get_nowait())
            self._queue.task_done()
        return left

    # ----- the sender -----

    async def _run(self) -> None:
        while True:
            delivery = await self._queue.get()
            self._current = delivery
            try:
                await self._deliver(delivery)
            except Exception:
                log.exception("ticket webhook delivery %s failed unexpectedly", delivery.id)
            finally:
                self._current = None
                self._queue.task_done()

    async def _deliver(self, delivery: Delivery) -> None:
        attempts = self._retry.attempts
        for attempt in range(1, attempts + 1):
            outcome = await self._attempt(delivery, attempt)
            what = f"{delivery.event} of {delivery.ticket} (delivery {delivery.id})"
            if outcome.verdict == "delivered":
                log.debug("ticket webhook delivered %s on attempt %d", what, attempt)
                return
            if outcome.verdict == "refused":
                log.error("ticket webhook at %s refused %s: %s; not retried",
                          self.host, what, outcome.detail)
                return
            if attempt == attempts:
                break
            pause = self._retry.delay(attempt, outcome.retry_after, self._rng)
            if not self._closing.is_set():
                log.warning("ticket webhook attempt %d of %s failed: %s; retrying in %.1f s",
                            attempt, what, outcome.detail, pause)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(pause):
                        await self._closing.wait()  # shutdown cuts the pause short
            if self._closing.is_set():
                log.error("ticket webhook shutting down: gave up on %s after %s", what,
                          outcome.detail)
                return
        log.error("ticket webhook gave up on %s of %s (delivery %s) after %d attempts",
                  delivery.event, delivery.ticket, delivery.id, attempts)

    async def _attempt(self, delivery: Delivery, attempt: int) -> _Outcome:
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            DELIVERY_HEADER: delivery.id,
            EVENT_HEADER: delivery.event,
            "X-Switchboard-Attempt": str(attempt),
            **sign(self._secret, int(self._clock()), delivery.body),
        }
        try:
            async with self._session.post(
                self._url, data=delivery.body, headers=headers, timeout=self._timeout,
                allow_redirects=False,
            ) as response:
                status = response.status
                retry_after = retry_after_seconds(response.headers.get("Retry-After"))
        except TimeoutError:
            return _Outcome("retry", f"no answer within {self._timeout.total} s")
        except aiohttp.ClientError as e:
            return _Outcome("retry", _describe(e))
        if 200 <= status < 300:
            return _Outcome("delivered", f"HTTP {status}")
        if status == 429 or status >= 500:
            return _Outcome("retry", f"HTTP {status}", retry_after)
        return _Outcome("refused", f"HTTP {status}")


def _describe(error: aiohttp.ClientError) -> str:
    """The kind of failure, without the URL some aiohttp errors carry."""
    if isinstance(error, aiohttp.ClientConnectorError):
        return f"cannot connect ({error.os_error.strerror or type(error.os_error).__name__})"
    return type(error).__name__
