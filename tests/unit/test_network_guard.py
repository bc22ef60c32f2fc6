import asyncio
import socket

import pytest

from tests.conftest import NetworkGuardError


def test_connections_beyond_loopback_are_refused() -> None:
    with socket.socket() as s, pytest.raises(NetworkGuardError):
        s.connect(("192.0.2.1", 443))


async def test_asyncio_connections_beyond_loopback_are_refused() -> None:
    with pytest.raises(NetworkGuardError):
        await asyncio.open_connection("192.0.2.1", 443)


async def test_loopback_connections_are_allowed() -> None:
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.close()
        assert port > 0
