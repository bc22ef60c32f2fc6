"""`UnixSignals`: the SQLite deployment's equivalent of PostgreSQL's LISTEN/NOTIFY.

Every process has sockets in one run directory (next to the database):
- a worker binds `worker-<id>` (datagrams): any process that records a message sends each
  worker one byte, so an idle worker claims at once instead of at its next poll; a process
  where someone stopped an answer sends each worker `stop:<item id>`, and the one writing
  that answer ends it;
- a process where requests wait binds `web-<id>` (a stream server): the worker answering
  such a request connects and writes the answer's events, one JSON line each, after a
  first line naming the message.
A socket left by a process that died is found refused and removed.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import json
import logging
import os
import socket
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from core.replies import ReplyEvent, event_from_json, event_to_json

log = logging.getLogger(__name__)

Deliver = Callable[[str, ReplyEvent], None]
_STOP = b"stop:"
_SUN_PATH_MAX = 100  # sockaddr_un.sun_path is 108 bytes on Linux, 104 on macOS
_LIST_SECONDS = 1.0  # how long the list of worker sockets is reused
_MAX_LINE = 16 * 1024 * 1024  # one event: a whole long answer


def run_dir(data_dir: Path) -> Path:
    """`DATA_DIR/run`, or a short directory named after it when that path is too long
    for a socket address."""
    preferred = data_dir.absolute() / "run"
    if len(str(preferred / "worker-0123456789ab")) <= _SUN_PATH_MAX:
        return preferred
    digest = hashlib.sha256(str(data_dir.absolute()).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"switchboard-{digest}"


class UnixSignals:
    def __init__(self, directory: Path) -> None:
        self._dir = directory
        self._id = uuid.uuid4().hex[:12]
        self._inbox: socket.socket | None = None  # this process's worker socket
        self._server: asyncio.Server | None = None
        self._workers: list[str] = []
        self._listed = float("-inf")
        self._sender = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sender.setblocking(False)

    @property
    def address(self) -> str:
        return f"unix:{self._dir / f'web-{self._id}'}"

    async def start(
        self, *, on_work: Callable[[], None] | None = None, deliver: Deliver | None = None,
        on_stop: Callable[[int], object] | None = None,
    ) -> None:
        self._dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        if on_work is not None:
            path = self._dir / f"worker-{self._id}"
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            sock.setblocking(False)
            sock.bind(str(path))
            asyncio.get_running_loop().add_reader(
                sock.fileno(), _drain, sock, on_work, on_stop or (lambda _item_id: None))
            self._inbox = sock
        if deliver is not None:
            self._server = await asyncio.start_unix_server(
                lambda r, w: _receive(r, w, deliver),
                path=str(self._dir / f"web-{self._id}"),
                limit=_MAX_LINE,
            )

    async def aclose(self) -> None:
        if self._inbox is not None:
            asyncio.get_running_loop().remove_reader(self._inbox.fileno())
            self._inbox.close()
            _unlink(self._dir / f"worker-{self._id}")
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            _unlink(self._dir / f"web-{self._id}")
        self._sender.close()

    # ----- work: any process → workers -----

    def work_added(self) -> None:
        """Wake every other worker on this database (best effort, never blocks)."""
        self._to_workers(b"!")

    def stop_requested(self, item_id: int) -> None:
        """Tell every other worker that the answer to `item_id` was stopped: the one
        writing it ends it. (Were this lost, the stop is recorded: a worker that claims
        the item again ends it as stopped.)"""
        self._to_workers(_STOP + str(item_id).encode())

    def _to_workers(self, datagram: bytes) -> None:
        for name in self._worker_sockets():
            try:
                self._sender.sendto(datagram, str(self._dir / name))
            except BlockingIOError:
                pass  # its queue is full: it has plenty to wake it already
            except OSError as e:
                if e.errno in (errno.ECONNREFUSED, errno.ENOENT):
                    _unlink(self._dir / name)  # its process is gone
                    self._listed = float("-inf")

    def _worker_sockets(self) -> list[str]:
        """The other workers' sockets, listed at most once a second — but while none was
        seen, on every call: the first worker to start must hear of work at once."""
        now = time.monotonic()
        if now - self._listed > _LIST_SECONDS or not self._workers:
            own = f"worker-{self._id}"
            try:
                self._workers = [
                    entry.name for entry in os.scandir(self._dir)
                    if entry.name.startswith("worker-") and entry.name != own
                ]
            except FileNotFoundError:
                self._workers = []
            self._listed = now
        return self._workers

    # ----- answers: a worker → the process where the request waits -----

    def replier(self, address: str, key: str) -> _SocketReplier:
        return _SocketReplier(address.removeprefix("unix:"), key)


class _SocketReplier:
    """Writes one answer's events to the waiting process; if it is gone, the answer is
    still stored, so nothing is lost but the live view."""

    def __init__(self, path: str, key: str) -> None:
        self._path = path
        self._key = key
        self._writer: asyncio.StreamWriter | None = None
        self._gone = False

    async def send(self, event: ReplyEvent) -> None:
        if self._gone:
            return
        try:
            if self._writer is None:
                _, self._writer = await asyncio.open_unix_connection(self._path)
                self._writer.write(json.dumps(self._key).encode() + b"\n")
            self._writer.write(event_to_json(event) + b"\n")
            if event.kind in ("done", "failed"):
                await self._writer.drain()
                self._writer.close()
                with contextlib.suppress(OSError):
                    await self._writer.wait_closed()
            elif self._writer.transport.get_write_buffer_size() > 1 << 20:
                await self._writer.drain()
        except OSError as e:
            log.info("the process waiting for message %s is gone (%s); the answer is stored",
                     self._key, type(e).__name__)
            self._gone = True


async def _receive(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, deliver: Deliver
) -> None:
    try:
        key = json.loads(await reader.readline())
        while line := await reader.readline():
            deliver(key, event_from_json(line))
    except (ValueError, OSError, asyncio.LimitOverrunError) as e:
        log.warning("dropped a malformed answer stream from a worker: %s", type(e).__name__)
    finally:
        writer.close()


def _drain(
    sock: socket.socket, on_work: Callable[[], None], on_stop: Callable[[int], object]
) -> None:
    """Read every pending datagram: each stop is passed on; any wake-up (one is as good as
    many) wakes the worker."""
    woken = False
    with contextlib.suppress(BlockingIOError, OSError):
        while datagram := sock.recv(64):
            if datagram.startswith(_STOP) and datagram[len(_STOP):].isdigit():
                on_stop(int(datagram[len(_STOP):]))
            else:
                woken = True
    if woken:
        on_work()


def _unlink(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
