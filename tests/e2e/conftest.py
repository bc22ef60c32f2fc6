"""The whole server over real HTTP on loopback, its model a fake OpenAI-compatible server
reached through the real openai SDK."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import text

from bots.server import SWITCHBOARD, create_app
from bots.settings import Settings, load_settings
from tests.fakes.openai_server import FakeOpenAI

API_KEY = "sk-test-0123456789"

MakeSettings = Callable[..., Settings]


@pytest.fixture
async def llm() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI(model="fake-model") as fake:
        yield fake


@pytest.fixture
def make_settings(tmp_path: Path, llm: FakeOpenAI) -> MakeSettings:
    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "data_dir": tmp_path / "data",
            "openai_base_url": llm.base_url,
            "openai_api_key": API_KEY,
            "model": "fake-model",
            "model_retries": 0,
            # Indexing Switchboard's own documentation is tested where it matters.
            "bundled_docs": False,
            **overrides,
        }
        return load_settings(**values)

    return make


@asynccontextmanager
async def serving(settings: Settings, **substitutes: Any) -> AsyncIterator[TestClient[Any, Any]]:
    """`switchboard serve`'s app, started and stopped as `web.run_app` would; `substitutes`
    go to `create_app` (a retriever, say)."""
    async with TestServer(create_app(settings, **substitutes), host="127.0.0.1") as server:
        async with TestClient(server) as client:
            yield client


@pytest.fixture
async def client(make_settings: MakeSettings) -> AsyncIterator[TestClient[Any, Any]]:
    async with serving(make_settings()) as c:
        yield c


def services(client: TestClient[Any, Any]) -> Any:
    return client.server.app[SWITCHBOARD]  # type: ignore[union-attr]


async def read_events(response: ClientResponse) -> list[tuple[str, dict[str, Any]]]:
    """Parse a server-sent event stream: (event name, JSON data) pairs, pings skipped."""
    events: list[tuple[str, dict[str, Any]]] = []
    name, data = "message", []
    async for raw in response.content:
        line = raw.decode().rstrip("\r\n")
        if not line:
            if data:
                events.append((name, json.loads("\n".join(data))))
            name, data = "message", []
        elif line.startswith(":"):
            continue
        elif line.startswith("event:"):
            name = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].lstrip())
    return events


async def settled(app: TestClient[Any, Any]) -> None:
    """Wait until the worker has nothing left pending or in progress."""
    engine = services(app).stores.engine
    for _ in range(500):
        async with engine.connect() as conn:
            busy = (await conn.execute(
                text("SELECT count(*) FROM inbox WHERE status IN ('pending', 'processing', 'answered')")
            )).scalar()
        if busy == 0:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the inbox did not settle")
