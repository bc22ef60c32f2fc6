"""Retention and export as an operator meets them: `switchboard purge` and `switchboard
export` (in-process, as `test_cli.py` runs the CLI, and as a real process on SQLite and
PostgreSQL), and the hourly purge an answering process runs."""

from __future__ import annotations

import asyncio
import getpass
import json
import socket
import stat
import subprocess
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiohttp import web
from sqlalchemy import func, select

from adapters.sql import migrate
from adapters.sql.engine import create_engine, sqlite_url
from adapters.sql.tables import conversations, turns
from bots.cli import main
from bots.retention import RETENTION_JOB
from bots.server import create_app
from bots.settings import load_settings
from tests.adapters.sql.history import History, seed_history
from tests.e2e.conftest import fresh_postgres_database
from tests.e2e.processes import CLI, REPOSITORY, clean_env
from tests.e2e.test_cli import chat
from tests.fakes.scripted import ScriptedChatModel, says

EXPECTED_TOTAL = 14  # rows `seed_history` makes a 30-day purge delete


async def _seed(url: str) -> History:
    engine = create_engine(url)
    try:
        await migrate.upgrade(engine)
        return await seed_history(engine, datetime.now(UTC))
    finally:
        await engine.dispose()


async def _count(url: str, table: object) -> int:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            return int((await conn.execute(
                select(func.count()).select_from(table))).scalar_one())  # type: ignore[arg-type]
    finally:
        await engine.dispose()


def test_purge_counts_on_a_dry_run_then_deletes_and_prints_what_it_deleted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url = sqlite_url(tmp_path)
    asyncio.run(_seed(url))
    monkeypatch.setenv("DATA_DIR", str(tmp_path))
    monkeypatch.setenv("SWITCHBOARD_RETENTION_DAYS", "30")

    assert main(["purge", "--dry-run"]) == 0
    dry = capsys.readouterr().out
    assert dry.startswith(f"would purge {EXPECTED_TOTAL} rows older than 30 days")
    assert asyncio.run(_count(url, turns)) == 7

    assert main(["purge"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"purged {EXPECTED_TOTAL} rows older than 30 days")
    assert "  turns                    4\n" in out and "  conversations            1\n" in out
    assert asyncio.run(_count(url, turns)) == 3

    assert main(["purge", "--days", "365"]) == 0
    assert capsys.readouterr().out.startswith("purged 0 rows older than 365 days")


def test_purge_needs_a_retention_and_refuses_a_bad_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DATA_DIR", str(tmp_path))
    assert main(["purge"]) == 2
    assert "SWITCHBOARD_RETENTION_DAYS" in capsys.readouterr().err
    with pytest.raises(SystemExit) as caught:
        main(["purge", "--days", "0"])
    assert caught.value.code == 2
    monkeypatch.setenv("SWITCHBOARD_RETENTION_DAYS", "-3")
    assert main(["purge"]) == 2
    assert "SWITCHBOARD_RETENTION_DAYS:" in capsys.readouterr().err


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def database_url(
    request: pytest.FixtureRequest, tmp_path: Path, postgres_unreachable: str | None
) -> AsyncIterator[str]:
    """A SQLite file, or a fresh PostgreSQL database (dropped afterwards)."""
    if request.param == "sqlite":
        yield sqlite_url(tmp_path)
        return
    if postgres_unreachable:
        pytest.skip(postgres_unreachable)
    async with fresh_postgres_database("sb_purge") as url:
        yield url


async def test_purge_as_a_process_on_either_database(database_url: str, tmp_path: Path) -> None:
    history = await _seed(database_url)
    env = clean_env({"DATABASE_URL": database_url, "DATA_DIR": str(tmp_path),
                     "SWITCHBOARD_RETENTION_DAYS": "30"})

    done = await asyncio.to_thread(
        subprocess.run, [*CLI, "purge"], env=env, cwd=REPOSITORY, capture_output=True,
        text=True, timeout=60,
    )

    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"purged {EXPECTED_TOTAL} rows")
    assert await _count(database_url, conversations) == 2
    assert await _count(database_url, turns) == len(history.kept_turns)


def test_export_of_a_person_and_of_a_conversation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    chat(tmp_path, "where is the VPN guide?\n", ScriptedChatModel([says("On the wiki.")]))
    monkeypatch.setenv("DATA_DIR", str(tmp_path))
    me = f"cli:{socket.gethostname()}:{getpass.getuser()}"

    assert main(["export", "--user", me]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["subject"] == {"kind": "user", "id": me}
    [conversation] = document["conversations"]
    assert [t["content"] for t in conversation["turns"]] == ["where is the VPN guide?",
                                                             "On the wiki."]

    saved = tmp_path / "export.json"
    assert main(["export", "--conversation", conversation["id"], "--output", str(saved)]) == 0
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600  # personal data
    assert json.loads(saved.read_text())["conversations"][0]["turns"] == conversation["turns"]

    assert main(["export", "--conversation", "no-such-id"]) == 1
    assert "no conversation no-such-id" in capsys.readouterr().err


async def _started(app: web.Application) -> web.AppRunner:
    runner = web.AppRunner(app)
    await runner.setup()  # runs the cleanup contexts' start-up halves
    return runner


async def test_an_answering_process_purges_on_its_own(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path)
    history = await _seed(url)
    settings = load_settings(data_dir=tmp_path, retention_days=30, bundled_docs=False)

    web_runner = await _started(create_app(settings, role="web"))
    try:
        assert RETENTION_JOB not in web_runner.app  # web processes stay on acknowledgements
    finally:
        await web_runner.cleanup()
    # The worker also answers the message the history left waiting: that is its job too.
    model = ScriptedChatModel([says("Answered at last.")])
    runner = await _started(create_app(settings, role="worker", model=model))
    try:
        job = runner.app[RETENTION_JOB]
        await asyncio.wait_for(job.ran.wait(), timeout=30)
    finally:
        await runner.cleanup()

    left = await _ids(url, select(conversations.c.id))
    assert history.gone_conversation not in left and history.long_conversation in left
    assert await _ids(url, select(turns.c.id).where(
        turns.c.conversation_id == history.long_conversation)) == history.kept_turns - {
        history.held_turn}


async def _ids(url: str, query: object) -> set[object]:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            return set((await conn.execute(query)).scalars())  # type: ignore[call-overload]
    finally:
        await engine.dispose()
