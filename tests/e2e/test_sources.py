"""Sources that stay in sync: a running assistant re-ingests a folder on its schedule (a
document added is cited without a restart, one deleted is pruned), `switchboard source`
keeps them, and a folder that is missing or empty (an unmounted disk) is an error that
removes nothing."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from adapters.sql.sources import SqlSourceStore
from bots.database import open_database
from bots.knowledge import ingestor_for, knowledge_index
from bots.settings import Settings
from bots.sources import SourceScheduler
from core.sources import DeclaredSource, SourceRecord
from tests.e2e.conftest import MakeSettings
from tests.e2e.processes import Processes
from tests.e2e.test_api_keys import switchboard

pytestmark = pytest.mark.timeout(180)

SYNCED_WITHIN = 90.0  # seconds a change may take to show (the interval is 10 s); a bound only


def write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(text, encoding="utf-8")
    return folder / name


async def until(check: Callable[[], Awaitable[Any]], what: str,
                within: float = SYNCED_WITHIN) -> Any:
    """Poll `check` until it returns something other than None; fail after `within`
    seconds."""
    deadline = time.monotonic() + within
    while (found := await check()) is None:
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {within:.0f} s: {what}")
        await asyncio.sleep(0.25)
    return found


# ----- the scheduler in this process, against a real index and database -----------------


class Scheduled:
    """A scheduler over the configured index and database, driven one round at a time."""

    def __init__(self, scheduler: SourceScheduler, index: Any) -> None:
        self.scheduler, self.index = scheduler, index

    @property
    def store(self) -> SqlSourceStore:
        return self.scheduler.store

    async def round(self) -> list[SourceRecord]:
        """Make every source due, run them, and return what the store then says."""
        await self.store.sync_now()
        await self.scheduler.run_due()
        return await self.store.list()

    async def indexed(self) -> list[str]:
        return sorted(source.rsplit("/", 1)[-1] for source in await self.index.sources())


@pytest.fixture
async def scheduled(make_settings: MakeSettings) -> AsyncIterator[Scheduled]:
    settings: Settings = make_settings()
    async with knowledge_index(settings) as index, open_database(settings) as engine:
        scheduler = SourceScheduler(store=SqlSourceStore(engine),
                                    ingestor=ingestor_for(index, settings), settings=settings)
        yield Scheduled(scheduler, index)


async def test_a_missing_or_emptied_folder_is_an_error_that_removes_nothing(
    scheduled: Scheduled, tmp_path: Path,
) -> None:
    folder = tmp_path / "mnt" / "docs"
    write(folder, "vpn.md", "# VPN\n\nReset the token at the network desk.\n")
    write(folder, "wifi.md", "# Wi-Fi\n\nUse CORP-SECURE.\n")
    await scheduled.store.add(DeclaredSource(path=str(folder), interval=60))
    [first] = await scheduled.round()
    assert first.last is not None and first.last.outcome == "ok"
    assert await scheduled.indexed() == ["vpn.md", "wifi.md"]

    folder.rename(tmp_path / "elsewhere")  # unmounted
    [missing] = await scheduled.round()
    folder.mkdir()  # the bare mount point
    [empty] = await scheduled.round()

    assert missing.last is not None and missing.last.outcome == "error"
    assert missing.last.error == f"{folder} does not exist (not mounted?); nothing was removed"
    assert empty.last is not None and empty.last.outcome == "error"
    assert empty.last.error == f"{folder} is empty (not mounted?); nothing was removed"
    assert await scheduled.indexed() == ["vpn.md", "wifi.md"]

    folder.rmdir()
    (tmp_path / "elsewhere").rename(folder)  # mounted again
    (folder / "wifi.md").unlink()
    [back] = await scheduled.round()
    assert back.last is not None and back.last.outcome == "ok" and back.last.counts is not None
    assert (back.last.counts.removed, back.last.counts.unchanged) == (1, 1)
    assert await scheduled.indexed() == ["vpn.md"]


async def test_a_failing_source_logs_one_line_per_run_and_one_traceback(
    scheduled: Scheduled, tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    write(tmp_path / "docs", "vpn.md", "# VPN\n\nReset the token.\n")
    await scheduled.store.add(DeclaredSource(path=str(tmp_path / "docs"), interval=60))
    await scheduled.index.aclose()  # every write now fails

    with caplog.at_level(logging.WARNING, logger="bots.sources"):
        runs = [await scheduled.round() for _ in range(3)]

    assert all(r.last is not None and r.last.outcome == "error" for [r] in runs)
    failures = [r for r in caplog.records if "could not be synced" in r.getMessage()]
    assert len(failures) == 3
    assert [bool(r.exc_info) for r in failures] == [True, False, False]


async def test_of_two_owning_processes_one_syncs_a_due_source(
    scheduled: Scheduled, make_settings: MakeSettings, tmp_path: Path,
) -> None:
    write(tmp_path / "docs", "vpn.md", "# VPN\n\nReset the token.\n")
    await scheduled.store.add(DeclaredSource(path=str(tmp_path / "docs"), interval=60))
    settings = make_settings()
    async with open_database(settings) as engine:  # another process's connection
        other = SourceScheduler(store=SqlSourceStore(engine), ingestor=scheduled.scheduler.ingestor,
                                settings=settings)

        ran = await asyncio.gather(scheduled.scheduler.run_due(), other.run_due())

    assert sorted(ran) == [0, 1]
    [record] = await scheduled.store.list()
    assert record.last is not None and record.last.counts is not None
    assert record.last.counts.added == 1


async def test_sources_are_synced_one_after_the_other_each_with_its_own_access(
    scheduled: Scheduled, tmp_path: Path,
) -> None:
    from core.sources import SourceAccess

    write(tmp_path / "public", "vpn.md", "# VPN\n\nReset the token.\n")
    write(tmp_path / "hr", "bands.md", "# Bands\n\nSalary band 7.\n")
    await scheduled.store.add(DeclaredSource(path=str(tmp_path / "public"), interval=60))
    await scheduled.store.add(DeclaredSource(
        path=str(tmp_path / "hr"), interval=60,
        access=SourceAccess(groups=("hr",), source_url_prefix="https://wiki.example.com/hr/")))

    records = await scheduled.round()

    assert [r.last.outcome if r.last else None for r in records] == ["ok", "ok"]
    sources = await scheduled.index.sources()
    assert "https://wiki.example.com/hr/bands.md" in sources
    from core.knowledge import Audience

    everyone = Audience(kind="person", principals=frozenset())
    hr = Audience(kind="person", principals=frozenset({"hr"}))
    assert not await scheduled.index.search("salary band", audience=everyone, limit=5)
    found = await scheduled.index.search("salary band", audience=hr, limit=5)
    assert found[0].url == "https://wiki.example.com/hr/bands.md"


# ----- a real `switchboard serve`, and `switchboard source` beside it ----------------------


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    # No model configured: offline answers quote and cite the passages found.
    env = {"DATA_DIR": str(tmp_path / "data"), "SWITCHBOARD_BUNDLED_DOCS": "false",
           "SWITCHBOARD_SOURCES": f"{tmp_path / 'handbook'}=10s"}
    with Processes(tmp_path / "processes", env) as procs:
        yield procs
        print(procs.report())


async def cited(url: str, question: str) -> list[str]:
    """The titles of the passages an answer to `question` cites."""
    async with aiohttp.ClientSession() as session, session.post(
        f"{url}/api/v1/chat", json={"message": question}
    ) as response:
        assert response.status == 200, await response.text()
        body = await response.json()
    return [citation["title"] for citation in body["citations"]]


async def listed(procs: Processes) -> str:
    code, out, err = await switchboard(procs, "source", "list")
    assert code == 0, err
    return out


async def test_a_folder_is_resynced_on_schedule_by_the_running_assistant(
    processes: Processes, tmp_path: Path,
) -> None:
    handbook, team = tmp_path / "handbook", tmp_path / "team"
    write(handbook, "vpn.md", "# VPN\n\n## Reset the token\n\nAt the network desk.\n")
    write(team, "wifi.md", "# Wi-Fi\n\n## Join the network\n\nUse CORP-SECURE.\n")
    server = processes.start("serve", "serve", http=True)
    await processes.ready(server)
    assert server.url is not None

    code, _, err = await switchboard(processes, "source", "add", str(team), "--every", "10s")
    assert code == 0, err
    assert err.startswith("added source ") and f"{team}, every 10s, public" in err
    # Both first runs done: the declared folder's and the one added while it runs.
    first = await until(
        lambda: _when(listed(processes), lambda out: out.count("last run") == 2),
        "both sources' first runs")
    assert f"{handbook}  every 10s  public  [SWITCHBOARD_SOURCES]" in first
    assert first.count("ok, 1 files: 1 added, 0 updated, 0 removed") == 2

    question = "How do I fix the third-floor printer?"
    assert "Printer › Fix the third-floor printer" not in await cited(server.url, question)
    printer = write(team, "printer.md", "# Printer\n\n## Fix the third-floor printer\n\n"
                                        "Lift the blue lever, then press reset.\n")
    await until(lambda: _when(cited(server.url, question),
                              lambda titles: "Printer › Fix the third-floor printer" in titles),
                "the new document cited, with no restart")
    added = await listed(processes)
    assert "ok, 2 files: 1 added, 0 updated, 0 removed, 1 unchanged" in added

    printer.unlink()
    await until(lambda: _when(cited(server.url, question),
                              lambda titles: "Printer › Fix the third-floor printer"
                              not in titles),
                "the deleted document pruned")
    pruned = await until(lambda: _when(listed(processes),
                                       lambda out: "0 added, 0 updated, 1 removed" in out),
                         "the pruning run listed")
    assert "1 removed, 1 unchanged" in pruned
    assert server.running  # one process throughout: no restart


async def _when(value: Awaitable[Any], ok: Callable[[Any], bool]) -> Any:
    """`value` if `ok(value)`, else None (for `until`)."""
    got = await value
    return got if ok(got) else None


# ----- `switchboard source` itself ---------------------------------------------------------


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
    return tmp_path / "data"


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    from bots.cli import main

    code = main(["source", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_sources_are_added_listed_synced_and_removed_by_the_cli(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    folder = write(tmp_path / "hr", "bands.md", "# Bands\n\nBand 7.\n").parent
    nothing = "no sources (add one with `switchboard source add PATH`, or set " \
              "SWITCHBOARD_SOURCES)\n"
    assert run(capsys, "list") == (0, "", nothing)

    code, _, err = run(capsys, "add", str(folder), "--every", "1h30m", "--allow-group", "hr",
                       "--allow-user", "ceo@example.com")
    assert code == 0
    assert err == (f"added source 1: {folder}, every 1h30m, restricted (ceo@example.com, "
                   "group:hr); the running assistant syncs it within seconds\n")
    code, out, _ = run(capsys, "list")
    assert code == 0
    first, second = out.splitlines()
    assert first == f"1  {folder}  every 1h30m  restricted (ceo@example.com, group:hr)"
    assert second.startswith("    never run; next run 20")

    assert run(capsys, "sync", "1")[0] == 0
    assert run(capsys, "sync")[2] == "every source is due now: the running assistant syncs " \
                                     "it within seconds\n"
    assert run(capsys, "remove", "1")[0] == 0
    assert run(capsys, "list")[1] == ""


@pytest.mark.parametrize(("args", "code", "says"), [
    (("add", "{tmp}/typo"), 2, "no such file or directory: {tmp}/typo"),
    (("add", "{tmp}/hr", "--every", "5s"), 2, "'5s': an interval is from 10s to 366d"),
    (("add", "{tmp}/hr", "--every", "often"), 2, "'often' is not an interval"),
    (("add", "{tmp}/hr", "--visibility", "public", "--allow-group", "hr"), 2,
     "visibility public with allow lists"),
    (("remove", "7"), 1, "no source 7 (see `switchboard source list`)"),
    (("remove", "seven"), 2, "'seven' is not a source id"),
    (("sync", "7"), 1, "no source 7"),
    (("sync",), 1, "no sources"),
])
def test_mistakes_are_said_in_one_line(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    args: tuple[str, ...], code: int, says: str,
) -> None:
    write(tmp_path / "hr", "bands.md", "# Bands\n\nBand 7.\n")
    try:
        got, _, err = run(capsys, *(a.format(tmp=tmp_path) for a in args))
    except SystemExit as e:  # argparse's usage errors
        got, err = int(str(e.code)), capsys.readouterr().err
    assert got == code
    assert says.format(tmp=tmp_path) in err
    assert "Traceback" not in err


def test_a_folder_is_kept_once_whether_declared_or_added(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    folder = write(tmp_path / "wiki", "home.md", "# Home\n").parent
    monkeypatch.setenv("SWITCHBOARD_SOURCES", f"{folder}=1h")
    assert run(capsys, "add", str(folder)) == (
        1, "", f"switchboard: {folder} is declared in SWITCHBOARD_SOURCES already\n")
    assert run(capsys, "add", str(tmp_path / "wiki" / "home.md"))[0] == 0
    assert run(capsys, "add", str(tmp_path / "wiki" / ".." / "wiki" / "home.md"))[0] == 1

    code, out, _ = run(capsys, "list")
    assert out.splitlines()[2:] == [
        f"-  {folder}  every 1h  public  [SWITCHBOARD_SOURCES]",
        "    not registered yet: the assistant takes it up when it starts",
    ]
    monkeypatch.setenv("SWITCHBOARD_SOURCES", f"{folder}=1s")
    code, _, err = run(capsys, "list")
    assert code == 2
    assert "  - SWITCHBOARD_SOURCES: entry 1: '1s': an interval is from 10s to 366d (use " \
           "PATH or PATH=INTERVAL, separated by commas: /srv/docs=10m,/mnt/wiki=1h)" in err
