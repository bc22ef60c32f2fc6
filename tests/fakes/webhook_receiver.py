"""A real HTTP webhook receiver on loopback, recording deliveries and scripted by tests.

    async with FakeWebhookReceiver() as receiver:
        receiver.script(Respond(503), Respond(503))  # then 200, as every unscripted request
        ...                                        # point a TicketWebhook at receiver.url
        first, second, third = await receiver.wait_for(3)
        assert first.delivery_id == third.delivery_id

Steps are used up in order, one per request: `Respond(status, headers)` answers at once;
`Hang()` answers 200 only when `release()` is called or the receiver closes (longer than
any client timeout); `hanging` is set while a request hangs. Every request is recorded in
`received` with its headers and raw body, scripted or not.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Self

from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy


@dataclass(frozen=True)
class Respond:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Hang:
    """Hold the request until `release()` or the receiver closes."""


Step = Respond | Hang


@dataclass(frozen=True)
class Received:
    headers: CIMultiDictProxy[str]
    body: bytes
    at: float  # time.monotonic() on arrival

    @property
    def delivery_id(self) -> str:
        return self.headers["X-Switchboard-Delivery"]

    @property
    def timestamp(self) -> str:
        return self.headers["X-Switchboard-Timestamp"]

    @property
    def signature(self) -> str:
        return self.headers["X-Switchboard-Signature"]

    def json(self) -> Any:
        return json.loads(self.body)


class FakeWebhookReceiver:
    def __init__(self, path: str = "/hooks/tickets") -> None:
        self.path = path
        self.url = ""
        self.received: list[Received] = []
        self.hanging = asyncio.Event()
        self._script: deque[Step] = deque()
        self._release = asyncio.Event()
        self._closing = asyncio.Event()
        self._changed = asyncio.Condition()
        self._runner: web.AppRunner | None = None

    def script(self, *steps: Step) -> None:
        self._script.extend(steps)

    def release(self) -> None:
        """Answer every hanging request (and any later `Hang()` at once)."""
        self._release.set()

    async def wait_for(self, count: int, timeout: float = 5.0) -> list[Received]:
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(lambda: len(self.received) >= count)
        return list(self.received)

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.received.append(Received(CIMultiDictProxy(CIMultiDict(request.headers)), body,
                                      time.monotonic()))
        async with self._changed:
            self._changed.notify_all()
        step = self._script.popleft() if self._script else Respond()
        match step:
            case Respond(status=status, headers=headers):
                return web.Response(status=status, headers=headers)
            case Hang():
                self.hanging.set()
                done = [asyncio.ensure_future(e.wait()) for e in (self._release, self._closing)]
                try:
                    await asyncio.wait(done, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    for waiter in done:
                        waiter.cancel()
                    self.hanging.clear()
                return web.Response(status=200)

    async def __aenter__(self) -> Self:
        app = web.Application()
        app.router.add_post(self.path, self._handle)
        self._runner = web.AppRunner(app, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}{self.path}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._closing.set()
        if self._runner is not None:
            await self._runner.cleanup()
