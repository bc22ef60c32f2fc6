"""`switchboard apikey` as an operator runs it, beside a running `switchboard serve`: a key
made by the command works over HTTP at once, is listed without its secret, and stops
working the moment it is revoked or expires, with no restart."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
from sqlalchemy import update

from adapters.sql.engine import create_engine, sqlite_url
from adapters.sql.tables import api_keys
from tests.e2e.processes import CLI, REPOSITORY, Processes, clean_env

pytestmark = pytest.mark.timeout(150)


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    env = {"DATA_DIR": str(tmp_path / "data"), "SWITCHBOARD_BUNDLED_DOCS": "false"}
    with Processes(tmp_path / "processes", env) as procs:
        yield procs
        print(procs.report())


async def switchboard(procs: Processes, *args: str) -> tuple[int, str, str]:
    """One `switchboard` command, as a process of its own: exit code, stdout, stderr."""
    done = await asyncio.to_thread(
        subprocess.run, [*CLI, *args], env=clean_env(procs.env), cwd=REPOSITORY,
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
    )
    return done.returncode, done.stdout, done.stderr


async def tickets_status(url: str, key: str | None) -> int:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{url}/api/v1/tickets", headers=headers) as response:
            await response.read()
            return response.status


async def test_keys_made_listed_revoked_and_expired_by_the_cli_hold_at_once(
    processes: Processes, tmp_path: Path
) -> None:
    server = processes.start("serve", "serve", http=True)
    await processes.ready(server)
    assert server.url is not None

    code, out, err = await switchboard(processes, "apikey", "create", "--user", "alice")
    assert code == 0, err
    key = out.strip()
    assert key.startswith("sbk_") and len(key) > 40 and "\n" not in key
    assert "shown only this once" in err and key not in err
    code, out, _ = await switchboard(processes, "apikey", "create", "--user", "bob",
                                     "--expires", "30d")
    assert code == 0
    bobs = out.strip()

    assert await tickets_status(server.url, key) == 200
    assert await tickets_status(server.url, bobs) == 200
    assert await tickets_status(server.url, key[:-1] + "x") == 401

    code, listing, _ = await switchboard(processes, "apikey", "list")
    assert code == 0 and key not in listing and bobs not in listing
    alice_row = next(line for line in listing.splitlines() if " alice " in line)
    key_id = alice_row.split()[0]
    assert key[:12] in alice_row and alice_row.endswith("active")
    bob_row = next(line for line in listing.splitlines() if " bob " in line)
    expires = (datetime.now(UTC) + timedelta(days=30)).strftime("%Y-%m-%d")
    assert expires in bob_row

    code, _, err = await switchboard(processes, "apikey", "revoke", key_id)
    assert code == 0 and "revoked" in err
    assert await tickets_status(server.url, key) == 401  # the running server, at once
    assert await tickets_status(server.url, bobs) == 200

    # Bob's key reaches its expiry (moved to the past rather than waited for).
    engine = create_engine(sqlite_url(tmp_path / "data"))
    try:
        async with engine.begin() as conn:
            await conn.execute(update(api_keys).where(api_keys.c.user_name == "bob")
                               .values(expires_at=datetime.now(UTC) - timedelta(seconds=1)))
    finally:
        await engine.dispose()
    assert await tickets_status(server.url, bobs) == 401

    code, listing, _ = await switchboard(processes, "apikey", "list")
    states = {line.split()[1]: line.split()[-1] for line in listing.splitlines()[1:]}
    assert states == {"alice": "revoked", "bob": "expired"}
    code, _, err = await switchboard(processes, "apikey", "revoke", "no-such-id")
    assert code == 1 and "no API key no-such-id" in err
