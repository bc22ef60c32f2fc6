"""The control socket: where the process that owns a data directory's knowledge index
takes admin requests from the same machine (`switchboard ingest` while it serves).

An HTTP server on a Unix socket in the run directory, which only the directory's owner
can enter (mode 700): being able to connect is the authorisation, as for a database's
local socket. A socket that refuses connections was left by a process that died."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from adapters.sockets.signals import run_dir

CONNECT_SECONDS = 2.0


def control_socket(data_dir: Path) -> Path:
    return run_dir(data_dir) / "control.sock"


async def answers(path: Path) -> bool:
    """Whether a live process listens on `path`."""
    if not path.exists():
        return False
    try:
        async with asyncio.timeout(CONNECT_SECONDS):
            _, writer = await asyncio.open_unix_connection(str(path))
    except (OSError, TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True
