"""Sources kept in SQL: added, declared by the environment, listed and removed; and claimed
for a sync by one process at a time (each test's other engines stand for other
processes), due again one interval after a run, taken over when a holder's lease ran out."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from adapters.sql.sources import SqlSourceStore
from core.sources import (
    DeclaredSource,
    RunCounts,
    RunResult,
    SourceAccess,
    SourceError,
    format_interval,
    parse_interval,
    parse_sources,
)
from tests.adapters.sql.conftest import Clock, Database

LEASE = timedelta(seconds=60)
HR = SourceAccess(groups=("hr",), users=("ceo@example.com",),
                  source_url_prefix="https://wiki.example.com/hr/")


async def claimed_id(store: SqlSourceStore) -> int | None:
    record = await store.claim("here", LEASE)
    return None if record is None else record.id


def stores(database: Database, clock: Clock, n: int) -> list[SqlSourceStore]:
    return [SqlSourceStore(database.engine(), now=clock.now) for _ in range(n)]


async def test_sources_are_added_once_listed_and_removed(
    database: Database, engine: object, clock: Clock
) -> None:
    [store] = stores(database, clock, 1)

    first = await store.add(DeclaredSource(path="/srv/handbook", interval=600))
    second = await store.add(DeclaredSource(path="/srv/hr", interval=3600, access=HR))
    again = await store.add(DeclaredSource(path="/srv/handbook", interval=60))

    assert first is not None and second is not None and again is None
    listed = await store.list()
    assert [(r.id, r.origin, r.declared) for r in listed] == [
        (first, "cli", DeclaredSource(path="/srv/handbook", interval=600)),
        (second, "cli", DeclaredSource(path="/srv/hr", interval=3600, access=HR)),
    ]
    assert all(r.last is None and r.next_run_at == clock.now() and not r.running
               for r in listed)
    assert await store.remove(first) == "removed"
    assert await store.remove(first) == "missing"
    assert [r.id for r in await store.list()] == [second]


async def test_the_environment_declares_its_sources_and_only_it_removes_them(
    database: Database, engine: object, clock: Clock
) -> None:
    [store] = stores(database, clock, 1)
    await store.add(DeclaredSource(path="/srv/handbook"))

    await store.declare([DeclaredSource(path="/mnt/wiki", interval=600),
                         DeclaredSource(path="/srv/handbook", interval=60)])
    await store.declare([DeclaredSource(path="/mnt/wiki", interval=3600),
                         DeclaredSource(path="/srv/handbook", interval=60)])  # restarted

    listed = {(r.origin, r.declared.path): r for r in await store.list()}
    assert {key: r.declared.interval for key, r in listed.items()} == {
        ("cli", "/srv/handbook"): 600, ("env", "/mnt/wiki"): 3600,
        ("env", "/srv/handbook"): 60}
    assert await store.remove(listed["env", "/mnt/wiki"].id) == "environment"

    await store.declare([])

    assert [(r.origin, r.declared.path) for r in await store.list()] == [
        ("cli", "/srv/handbook")]


async def test_one_process_claims_a_due_source_and_it_is_due_again_an_interval_later(
    database: Database, engine: object, clock: Clock
) -> None:
    here, there = stores(database, clock, 2)
    source_id = await here.add(DeclaredSource(path="/srv/handbook", interval=600))

    claimed = await here.claim("here", LEASE)
    assert claimed is not None and claimed.id == source_id and claimed.running
    assert await there.claim("there", LEASE) is None
    assert [r.running for r in await there.list()] == [True]

    clock.advance(timedelta(seconds=5))
    counts = RunCounts(files=3, added=2, unchanged=1, skipped=1, passages_written=9)
    await here.finish(claimed.id, "here", RunResult(outcome="ok", finished_at=clock.now(),
                                                    counts=counts))

    [record] = await there.list()
    assert record.last == RunResult(outcome="ok", finished_at=clock.now(), counts=counts)
    assert record.next_run_at == clock.now() + timedelta(seconds=600)
    assert not record.running
    assert await there.next_due() == record.next_run_at
    clock.advance(timedelta(seconds=599))
    assert await there.claim("there", LEASE) is None
    clock.advance(timedelta(seconds=1))
    assert (await there.claim("there", LEASE)) is not None


async def test_a_failed_run_keeps_its_error_and_is_retried_at_the_next_interval(
    database: Database, engine: object, clock: Clock
) -> None:
    [store] = stores(database, clock, 1)
    await store.add(DeclaredSource(path="/mnt/gone", interval=60))
    claimed = await store.claim("here", LEASE)
    assert claimed is not None

    error = "/mnt/gone does not exist (not mounted?); nothing was removed"
    await store.finish(claimed.id, "here", RunResult(outcome="error", finished_at=clock.now(),
                                                     error=error))

    [record] = await store.list()
    assert record.last is not None and (record.last.outcome, record.last.error) == (
        "error", error)
    clock.advance(timedelta(seconds=60))
    assert await store.claim("here", LEASE) is not None


async def test_a_holder_that_died_is_taken_over_once_its_lease_runs_out(
    database: Database, engine: object, clock: Clock
) -> None:
    dead, alive = stores(database, clock, 2)
    await dead.add(DeclaredSource(path="/srv/handbook", interval=600))
    claimed = await dead.claim("dead", LEASE)
    assert claimed is not None

    clock.advance(LEASE - timedelta(seconds=1))
    assert await alive.claim("alive", LEASE) is None
    clock.advance(timedelta(seconds=2))
    taken = await alive.claim("alive", LEASE)
    assert taken is not None and taken.id == claimed.id

    # The first holder comes back late: its renewal fails, its result does not free
    # the new holder's lease.
    assert not await dead.renew(claimed.id, "dead", LEASE)
    await dead.finish(claimed.id, "dead", RunResult(outcome="ok", finished_at=clock.now(),
                                                    counts=RunCounts()))
    assert [r.running for r in await alive.list()] == [True]
    assert await alive.renew(claimed.id, "alive", LEASE)


async def test_a_released_or_requested_source_is_due_at_once(
    database: Database, engine: object, clock: Clock
) -> None:
    [store] = stores(database, clock, 1)
    first = await store.add(DeclaredSource(path="/srv/a", interval=600))
    await store.add(DeclaredSource(path="/srv/b", interval=600))
    for _ in range(2):
        claimed = await store.claim("here", LEASE)
        assert claimed is not None
        await store.finish(claimed.id, "here", RunResult(outcome="ok", finished_at=clock.now(),
                                                         counts=RunCounts()))
    assert await store.claim("here", LEASE) is None

    assert await store.sync_now(first) == 1
    assert await claimed_id(store) == first
    assert first is not None
    await store.release(first, "here")
    assert await claimed_id(store) == first
    assert await store.sync_now() == 2
    assert await store.sync_now(9999) == 0


async def test_of_processes_claiming_at_once_exactly_one_gets_each_source(
    database: Database, engine: object, clock: Clock
) -> None:
    contenders = stores(database, clock, 3)
    for n in range(4):
        await contenders[0].add(DeclaredSource(path=f"/srv/{n}", interval=600))

    async def claim_all(store: SqlSourceStore, owner: str) -> list[int]:
        got = []
        while (record := await store.claim(owner, LEASE)) is not None:
            got.append(record.id)
        return got

    results = await asyncio.gather(*(claim_all(s, f"p{n}") for n, s in enumerate(contenders)))

    claimed = [source_id for got in results for source_id in got]
    assert sorted(claimed) == sorted(r.id for r in await contenders[0].list())


@pytest.mark.parametrize(("raw", "seconds"), [
    ("90", 90), ("30s", 30), ("10m", 600), ("1h30m", 5400), ("2d", 172_800), (" 1H ", 3600),
])
def test_an_interval_is_written_in_seconds_minutes_hours_or_days(raw: str, seconds: int) -> None:
    assert parse_interval(raw) == seconds
    assert parse_interval(format_interval(seconds)) == seconds


@pytest.mark.parametrize("raw", ["", "5s", "ten minutes", "1.5h", "-10m", "400d"])
def test_an_interval_too_short_or_unreadable_is_refused(raw: str) -> None:
    with pytest.raises(SourceError):
        parse_interval(raw)


def test_the_environment_lists_paths_with_optional_intervals() -> None:
    declared = parse_sources("/srv/handbook=1h, /mnt/wiki ,/srv/a=b")
    assert declared == (DeclaredSource(path="/srv/handbook", interval=3600),
                        DeclaredSource(path="/mnt/wiki", interval=600),
                        DeclaredSource(path="/srv/a=b", interval=600))
    with pytest.raises(SourceError, match="entry 1: '1s'.*entry 3 repeats /srv/x"):
        parse_sources("/srv/x=1s,/srv/x,/srv/x/../x")
