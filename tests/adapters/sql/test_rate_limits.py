"""Rate limits with the `limits` library counted in SQL: the count is one across
processes (each engine here stands for a process), a window's end lets messages through
again, and the first refusal of a window is the only one that says so."""

from __future__ import annotations

import asyncio

from limits import parse

from adapters.ratelimits.limiter import LimitsRateLimiter
from adapters.sql.rate_limits import SqlLimitStorage
from core.limits import Admitted, Limited
from tests.adapters.sql.conftest import Database


class Seconds:
    """The limiter's clock, moved by the test (epoch seconds, as `limits` counts)."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def limiter(database: Database, clock: Seconds, *, user: str | None = "3/minute",
            workspace: str | None = None) -> LimitsRateLimiter:
    return LimitsRateLimiter(
        SqlLimitStorage(database.engine(), now=clock), now=clock,
        per_user=parse(user) if user else None,
        per_workspace=parse(workspace) if workspace else None,
    )


async def test_over_the_limit_is_refused_and_told_once_per_window(
    database: Database, engine: object
) -> None:
    clock = Seconds()
    limits = limiter(database, clock)
    admitted = [await limits.admit("slack:T1:U1", "slack:T1") for _ in range(3)]
    assert admitted == [Admitted()] * 3

    clock.now += 20
    first = await limits.admit("slack:T1:U1", "slack:T1")
    second = await limits.admit("slack:T1:U1", "slack:T1")

    assert first == Limited(scope="user", retry_after=40, tell=True)
    assert second == Limited(scope="user", retry_after=40, tell=False)
    assert await limits.admit("slack:T1:U2", "slack:T1") == Admitted()  # someone else

    clock.now += 40  # the window has ended
    assert await limits.admit("slack:T1:U1", "slack:T1") == Admitted()


async def test_the_workspace_limit_counts_everyone_in_it(
    database: Database, engine: object
) -> None:
    clock = Seconds()
    limits = limiter(database, clock, user="10/minute", workspace="2/minute")
    assert await limits.admit("teams:A:u1", "teams:A") == Admitted()
    assert await limits.admit("teams:A:u2", "teams:A") == Admitted()

    refused = await limits.admit("teams:A:u3", "teams:A")

    assert isinstance(refused, Limited) and (refused.scope, refused.tell) == ("workspace", True)
    assert await limits.admit("teams:B:u1", "teams:B") == Admitted()  # another tenant


async def test_processes_on_one_database_share_one_count(
    database: Database, engine: object
) -> None:
    """Two engines (two processes) hitting the same person's limit at once: exactly the
    limit is admitted, whichever process each message reached."""
    clock = Seconds()
    here, there = limiter(database, clock, user="5/minute"), limiter(database, clock,
                                                                     user="5/minute")
    results = await asyncio.gather(*(
        (here if n % 2 else there).admit("web:local:ada", "web:local") for n in range(12)
    ))

    assert sum(isinstance(r, Admitted) for r in results) == 5
    told = [r for r in results if isinstance(r, Limited) and r.tell]
    assert len(told) == 1
