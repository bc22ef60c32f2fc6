"""`switchboard groups` as an operator runs it, beside a running `switchboard serve`: a
group named as the ticket agents makes its members agents at once, with no restart, and
taking them out undoes it; mistakes are usage errors, never tracebacks."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.e2e.processes import Processes
from tests.e2e.test_api_keys import switchboard

pytestmark = pytest.mark.timeout(150)

ALICE, BOB = "alice-key-0123456789", "bob-key-0123456789ab"


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    env = {"DATA_DIR": str(tmp_path / "data"), "SWITCHBOARD_BUNDLED_DOCS": "false",
           "SWITCHBOARD_API_KEYS": f"alice:{ALICE},bob:{BOB}",
           "SWITCHBOARD_TICKET_AGENTS": "it-support"}
    with Processes(tmp_path / "processes", env) as procs:
        yield procs
        print(procs.report())


async def call(url: str, key: str, method: str, path: str, body: Any = None) -> Any:
    async with aiohttp.ClientSession() as session:
        async with session.request(method, f"{url}/api/v1{path}", json=body,
                                   headers={"Authorization": f"Bearer {key}"}) as response:
            assert response.status < 300, await response.text()
            return await response.json()


async def everyones_tickets(url: str, key: str) -> list[str]:
    found = await call(url, key, "GET", "/tickets?all=true")
    return [t["number"] for t in found["tickets"]]


async def test_a_group_kept_by_the_cli_makes_ticket_agents_at_once(
    processes: Processes,
) -> None:
    server = processes.start("serve", "serve", http=True)
    await processes.ready(server)
    assert server.url is not None
    ticket = (await call(server.url, BOB, "POST", "/tickets", {"title": "VPN down"}))["number"]
    assert await everyones_tickets(server.url, ALICE) == []

    code, _, err = await switchboard(processes, "groups", "add", "it-support",
                                     "web:local:alice", "Grace@Example.com")
    assert (code, err.strip()) == (0, "added 2 to it-support")
    assert await everyones_tickets(server.url, ALICE) == [ticket]

    code, out, _ = await switchboard(processes, "groups", "list")
    assert (code, out.split()) == (0, ["it-support", "2"])
    code, out, _ = await switchboard(processes, "groups", "show", "it-support")
    assert (code, out.splitlines()) == (0, ["grace@example.com", "web:local:alice"])

    code, _, err = await switchboard(processes, "groups", "remove", "it-support",
                                     "web:local:alice")
    assert (code, err.strip()) == (0, "removed 1 from it-support")
    assert await everyones_tickets(server.url, ALICE) == []


@pytest.mark.parametrize(("args", "code", "says"), [
    (("groups", "add", "two words", "ada@example.com"), 2, "is not a group name"),
    (("groups", "add", "finance", "ada"), 2, "is not a member"),
    (("groups", "add", "finance"), 2, "required: MEMBER"),
    (("groups", "show", "nobody"), 1, "no group nobody"),
    (("groups", "remove", "finance", "ada@example.com"), 1, "none of them is in finance"),
])
async def test_mistakes_are_said_in_one_line(
    processes: Processes, args: tuple[str, ...], code: int, says: str
) -> None:
    got, out, err = await switchboard(processes, *args)

    assert (got, out) == (code, "")
    assert says in err and "Traceback" not in err
