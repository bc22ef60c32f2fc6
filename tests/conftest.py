"""Test-wide rules: no connection leaves this machine, and no test calls a real service."""

from __future__ import annotations

import asyncio
import ipaddress
import os
import socket
from collections.abc import Iterator

import pytest

_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex


POSTGRES_URL = os.environ.get(
    "SWITCHBOARD_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)


class NetworkGuardError(OSError):
    pass


def _check(address: object) -> None:
    if isinstance(address, (str, bytes)):  # AF_UNIX path
        return
    host = address[0] if isinstance(address, tuple) else address
    try:
        loopback = ipaddress.ip_address(str(host).split("%")[0]).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if not loopback:
        raise NetworkGuardError(f"tests may only connect to loopback, not {host!r}")


def _guarded_connect(self: socket.socket, address: object) -> None:
    _check(address)
    return _real_connect(self, address)  # type: ignore[arg-type]


def _guarded_connect_ex(self: socket.socket, address: object) -> int:
    _check(address)
    return _real_connect_ex(self, address)  # type: ignore[arg-type]


@pytest.fixture(autouse=True, scope="session")
def _loopback_only() -> Iterator[None]:
    """Fails any test that opens a connection beyond loopback (asyncio, aiohttp, httpx,
    asyncpg and requests all connect through `socket.socket.connect`)."""
    socket.socket.connect = _guarded_connect  # type: ignore[method-assign]
    socket.socket.connect_ex = _guarded_connect_ex  # type: ignore[method-assign]
    try:
        yield
    finally:
        socket.socket.connect = _real_connect  # type: ignore[method-assign]
        socket.socket.connect_ex = _real_connect_ex  # type: ignore[method-assign]


@pytest.fixture(autouse=True)
def _no_real_services(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings must come from each test, never from the developer's shell or `.env`."""
    from bots.settings import Settings

    monkeypatch.setitem(Settings.model_config, "env_file", None)
    channel_prefixes = ("SLACK_", "TEAMS_", "MICROSOFTAPP", "MICROSOFT_APP", "TO_BOT_FROM_",
                        "TO_CHANNEL_FROM_")
    for name in [n for n in os.environ if n.startswith("SWITCHBOARD_") and "_TEST_" not in n]:
        monkeypatch.delenv(name)
    for name in [n for n in os.environ if n.upper().startswith(channel_prefixes)]:
        monkeypatch.delenv(name)
    for name in (
        "OPENAI_API_KEY",
        "OPENAI_BASE_URL",
        "SWITCHBOARD_MODEL",
        "DATABASE_URL",
        "QDRANT_URL",
        "QDRANT_API_KEY",
        "DATA_DIR",
        "PORT",
        "HOST",
        "TIKTOKEN_CACHE_DIR",
        "CHANNEL_SERVICE",
        "VALIDATE_AUTHORITY",
        "OAUTH_URL",
        "LOG_FORMAT",
        "LOG_CONTENT",
    ):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="session")
def postgres_unreachable(_loopback_only: None) -> str | None:
    """Why PostgreSQL tests are skipped, or None when the server answers within ~2 s."""
    from sqlalchemy import make_url, text

    from adapters.sql.engine import create_engine

    async def probe() -> None:
        engine = create_engine(POSTGRES_URL, connect_args={"timeout": 2})
        try:
            async with asyncio.timeout(2.5), engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        finally:
            await engine.dispose()

    try:
        asyncio.run(probe())
    except Exception as e:  # any failure means "not here": skip, don't error
        where = make_url(POSTGRES_URL).render_as_string(hide_password=True)
        return f"PostgreSQL not reachable at {where}: {type(e).__name__}: {e}"
    return None
