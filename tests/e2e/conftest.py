"""The whole server over real HTTP on loopback, its model a fake OpenAI-compatible server
reached through the real openai SDK."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import make_url, text

from adapters.sql import units
from adapters.sql.engine import create_engine
from bots.server import SWITCHBOARD, create_app
from bots.settings import Settings, load_settings
from core.errors import StorageError
from core.inbox import Answered, Claim, Started
from tests.conftest import POSTGRES_URL
from tests.fakes.bot_framework import ChannelIdentity, FakeConnector, FakeLogin
from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.slack_api import FakeSlack

API_KEY = "sk-test-0123456789"

MakeSettings = Callable[..., Settings]


@asynccontextmanager
async def fresh_postgres_database(prefix: str) -> AsyncIterator[str]:
    """A new, empty database on the test PostgreSQL server, dropped afterwards: its URL,
    password included, as a process's DATABASE_URL would have it."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = create_engine(POSTGRES_URL).execution_options(isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        await conn.exec_driver_sql(f"CREATE DATABASE {name}")
    try:
        yield make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        async with admin.connect() as conn:
            await conn.exec_driver_sql(f"DROP DATABASE {name} WITH (FORCE)")
        await admin.dispose()


@pytest.fixture
async def llm() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI(model="fake-model") as fake:
        yield fake


# The fakes of the channels, for tests that run Switchboard as real processes (and for
# tests/e2e/teams). Their identities live with the channel tests (tests/e2e/slack,
# tests/e2e/teams), whose conftests import this one: imported when first used.


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    from tests.e2e.slack.conftest import ASKER, BOT_ID, BOT_USER, TEAM

    async with FakeSlack(team_id=TEAM, bot_user_id=BOT_USER, bot_id=BOT_ID) as fake:
        fake.add_user(ASKER, name="ada", real_name="Ada Lovelace", email="ada@example.com")
        yield fake


@pytest.fixture(scope="session")
def identity() -> Iterator[ChannelIdentity]:
    with ChannelIdentity() as fake:
        yield fake


@pytest.fixture(scope="session")
def login() -> Iterator[FakeLogin]:
    from tests.e2e.teams.conftest import APP_ID, APP_SECRET, TENANT

    with FakeLogin() as fake:
        fake.add_app(APP_ID, APP_SECRET, tenant=TENANT)
        yield fake


@pytest.fixture
async def connector() -> AsyncIterator[FakeConnector]:
    from tests.e2e.teams.conftest import ASKER_AAD, ASKER_ID, PERSONAL_AAD, PERSONAL_ID

    async with FakeConnector() as fake:
        fake.add_member(id=ASKER_ID, aad_object_id=ASKER_AAD, name="Dave Taniguchi",
                        email="dave@example.com")
        fake.add_member(id=PERSONAL_ID, aad_object_id=PERSONAL_AAD, name="Tien Suwandy",
                        email="tien@example.com")
        yield fake


@pytest.fixture
def procs(tmp_path: Path, slack: FakeSlack, llm: FakeOpenAI) -> Iterator[Any]:
    """`switchboard` commands as real processes (tests/e2e/processes.py), configured for
    Slack and the model against the fakes; the tail of each one's stderr is printed
    afterwards (pytest shows it when the test failed)."""
    from tests.e2e.processes import Processes
    from tests.e2e.slack.conftest import BOT_TOKEN, SECRET

    env = {
        "DATA_DIR": str(tmp_path / "data"),
        "SWITCHBOARD_BUNDLED_DOCS": "false",
        "SWITCHBOARD_LOG_LEVEL": "INFO",
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_SIGNING_SECRET": SECRET,
        "SLACK_API_URL": slack.base_url,
        "OPENAI_BASE_URL": llm.base_url,
        "OPENAI_API_KEY": "sk-test-0123456789",
        "SWITCHBOARD_MODEL": "fake-model",
        "SWITCHBOARD_MODEL_RETRIES": "0",
    }
    with Processes(tmp_path / "processes", env) as processes:
        yield processes
        print(processes.report())


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


async def restricted_to_group(
    settings: Settings, folder: Path, *, group: str, members: list[str], text: str
) -> None:
    """One document only `group` may read, ingested as `switchboard ingest` would, and
    the group kept as `switchboard groups add` would keep it."""
    from adapters.ingest.pipeline import ingest
    from adapters.sql.groups import SqlGroupStore
    from bots.database import open_database
    from bots.knowledge import ingest_options, knowledge_index

    folder.mkdir()
    (folder / "restricted.md").write_text(
        f"---\nvisibility: restricted\nallow_groups: [{group}]\n---\n{text}\n"
    )
    async with knowledge_index(settings) as index:
        await ingest([folder], index, options=ingest_options(settings))
    async with open_database(settings) as engine:
        await SqlGroupStore(engine).add(group, members)


@pytest.fixture
async def client(make_settings: MakeSettings) -> AsyncIterator[TestClient[Any, Any]]:
    async with serving(make_settings()) as c:
        yield c


def services(client: TestClient[Any, Any]) -> Any:
    return client.server.app[SWITCHBOARD]  # type: ignore[union-attr]


async def sse_events(response: ClientResponse) -> AsyncIterator[tuple[str, dict[str, Any]]]:
    """A server-sent event stream as it arrives: (event name, JSON data), pings skipped."""
    name, data = "message", []
    async for raw in response.content:
        line = raw.decode().rstrip("\r\n")
        if not line:
            if data:
                yield name, json.loads("\n".join(data))
            name, data = "message", []
        elif line.startswith(":"):
            continue
        elif line.startswith("event:"):
            name = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].lstrip())


async def read_events(response: ClientResponse) -> list[tuple[str, dict[str, Any]]]:
    """The whole stream's events."""
    return [event async for event in sse_events(response)]


async def events_until(response: ClientResponse, wanted: str) -> list[tuple[str, dict[str, Any]]]:
    """Events up to and including the first named `wanted` (the rest stay unread)."""
    seen = []
    async for name, data in sse_events(response):
        seen.append((name, data))
        if name == wanted:
            return seen
    raise AssertionError(f"the stream ended without a {wanted} event: {seen}")


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


@contextmanager
def notes_failing(monkeypatch: pytest.MonkeyPatch, *, failing: bool = True) -> Iterator[None]:
    """Inside: noting the message that shows an answer fails, as if the database went
    away as the message opened (each note is retried for `core.inbox.STORE_PATIENCE`)."""
    if not failing:
        yield
        return

    def away(*_: object, **__: object) -> set[Any]:
        raise StorageError("the database is restarting")

    with monkeypatch.context() as patch:
        patch.setattr(units, "note_replies", away)
        yield


async def taken_over_while_away(
    app: TestClient[Any, Any], monkeypatch: pytest.MonkeyPatch, *, noted: str | None
) -> Started | Answered:
    """This process loses the database (its lease renewals and claims fail) while it
    answers the one item in progress, until its lease has run out and another worker
    takes the item over; then the database is back. Waits first, if `noted` is given,
    until that message is noted as showing the answer. The other worker's start."""
    sb = services(app)
    [item_id] = await _items_in_progress(app, noted)
    begin_turns = sb.inbox.begin_turns

    async def away(*_: object, **__: object) -> None:
        raise StorageError("the database is restarting")

    other = Claim(owner="another-worker", lease=timedelta(minutes=5))
    with monkeypatch.context() as cut_off:
        cut_off.setattr(sb.inbox, "renew", away)
        cut_off.setattr(sb.inbox, "begin_turns", away)
        for _ in range(300):  # the lease is a few seconds
            if taken := await begin_turns(other, limit=1):
                [start] = taken
                assert start.item.id == item_id and isinstance(start, Started | Answered)
                return start
            await asyncio.sleep(0.05)
    raise AssertionError("the lease did not run out")


async def _items_in_progress(app: TestClient[Any, Any], noted: str | None) -> list[int]:
    engine = services(app).stores.engine
    for _ in range(500):
        async with engine.connect() as conn:
            rows = (await conn.execute(
                text("SELECT id, reply_id FROM inbox "
                     "WHERE status IN ('processing', 'answered')")
            )).all()
        if rows and (noted is None or rows[0].reply_id == noted):
            return [row.id for row in rows]
        await asyncio.sleep(0.02)
    raise AssertionError(f"no item in progress{f' with {noted} noted' if noted else ''}")


async def idle(app: TestClient[Any, Any]) -> None:
    """Wait until this process's worker holds nothing (whatever the inbox says)."""
    worker = services(app).worker
    for _ in range(500):
        if worker.busy == 0:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the worker did not finish")
