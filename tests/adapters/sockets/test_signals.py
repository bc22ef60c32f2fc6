"""`UnixSignals` between real sockets in one run directory: who hears of new work, and
when (the SQLite deployment's stand-in for LISTEN/NOTIFY)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from adapters.sockets.signals import UnixSignals


@asynccontextmanager
async def started(
    directory: Path, on_work: Callable[[], None] | None = None
) -> AsyncIterator[UnixSignals]:
    signals = UnixSignals(directory)
    await signals.start(on_work=on_work)
    try:
        yield signals
    finally:
        await signals.aclose()


async def woken(event: asyncio.Event) -> bool:
    try:
        async with asyncio.timeout(5):
            await event.wait()
    except TimeoutError:
        return False
    return True


async def test_a_worker_hears_of_work_recorded_elsewhere(tmp_path: Path) -> None:
    wake = asyncio.Event()
    async with started(tmp_path, wake.set), started(tmp_path) as web:
        web.work_added()
        assert await woken(wake)


async def test_a_worker_that_starts_after_the_web_process_is_woken_at_once(
    tmp_path: Path,
) -> None:
    """The web process looked for workers before any had started (the first message after
    a deploy): the next message must still wake the new worker, not wait for its poll."""
    async with started(tmp_path) as web:
        web.work_added()  # nobody to wake yet
        wake = asyncio.Event()
        async with started(tmp_path, wake.set):
            web.work_added()
            assert await woken(wake)


async def test_a_worker_does_not_wake_itself(tmp_path: Path) -> None:
    """Its own process wakes it directly (`Switchboard.work_added`); the socket is for
    the others."""
    wake = asyncio.Event()
    async with started(tmp_path, wake.set) as worker:
        worker.work_added()
        await asyncio.sleep(0.1)
        assert not wake.is_set()


async def test_a_killed_workers_socket_is_removed(tmp_path: Path) -> None:
    # The socket file of a worker that was killed: bound once, nobody reads it any more.
    stale = tmp_path / "worker-0123456789ab"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(stale))
    sock.close()
    wake = asyncio.Event()
    async with started(tmp_path) as web, started(tmp_path, wake.set):
        web.work_added()
        assert not stale.exists()
        assert await woken(wake)  # the live one still hears


async def test_a_worker_hears_of_a_stopped_answer_without_being_woken_for_work(
    tmp_path: Path,
) -> None:
    """A stop names its item; it is not new work (the worker claims nothing for it)."""
    wake = asyncio.Event()
    stopped: asyncio.Queue[int] = asyncio.Queue()
    worker = UnixSignals(tmp_path)
    await worker.start(on_work=wake.set, on_stop=stopped.put_nowait)
    try:
        async with started(tmp_path) as web:
            web.stop_requested(7)
            assert await asyncio.wait_for(stopped.get(), 5) == 7
            assert not wake.is_set()
            web.work_added()
            assert await woken(wake)
    finally:
        await worker.aclose()
