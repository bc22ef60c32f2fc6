"""Retention and export, wired to the settings: the hourly purge an answering process
runs when `SWITCHBOARD_RETENTION_DAYS` is set, `switchboard purge` and `switchboard
export`.

The purge runs in the answering processes (`serve` and `worker`, not `--role web`): there
is always at least one, and web processes stay free for acknowledgements. Several workers
on PostgreSQL take turns through an advisory lock (`adapters/sql/retention.py`); on SQLite
there is one writer anyway.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import os
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.sql import export, retention
from adapters.sql.engine import Executor, transaction
from bots.bootstrap import Switchboard, sql_stores
from bots.settings import Settings

log = logging.getLogger(__name__)

PURGE_INTERVAL = 3600.0  # seconds between two purges

CleanupContext = Callable[[web.Application], AsyncIterator[None]]


@dataclass
class RetentionJob:
    """The periodic purge; `ran` is set after each round (what tests wait on)."""

    executor: Executor
    engine: AsyncEngine
    days: int
    interval: float = PURGE_INTERVAL
    ran: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self) -> None:
        while True:
            await self.purge_once()
            await asyncio.sleep(self.interval)

    async def purge_once(self) -> None:
        cutoff = datetime.now(UTC) - timedelta(days=self.days)
        try:
            result = await retention.purge(self.executor, self.engine, cutoff)
        except Exception:
            log.warning("could not purge rows older than %d days", self.days, exc_info=True)
        else:
            if result.busy:
                log.debug("another process is purging: skipped")
            elif result.total:
                log.info("purged %d rows older than %d days (%s)", result.total, self.days,
                         _summary(result.counts))
        self.ran.set()


RETENTION_JOB = web.AppKey("retention_job", RetentionJob)


def retention_context(
    key: web.AppKey[Switchboard], *, interval: float = PURGE_INTERVAL
) -> CleanupContext:
    """A cleanup context owning the purge task, when retention is set and the stores are
    SQL (`key`: bots.server's `SWITCHBOARD`, passed in to keep the import one-way)."""

    async def purging(app: web.Application) -> AsyncIterator[None]:
        sb = app[key]
        days, executor, engine = sb.settings.retention_days, sb.stores.executor, sb.stores.engine
        if days is None or executor is None or engine is None:
            yield
            return
        job = app[RETENTION_JOB] = RetentionJob(executor=executor, engine=engine, days=days,
                                                interval=interval)
        task = asyncio.create_task(job.run(), name="retention")
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    return purging


async def run_purge(settings: Settings, *, days: int | None, dry_run: bool, out: TextIO) -> int:
    """`switchboard purge`: 0 done, 1 another process was purging, 2 no retention set."""
    days = days if days is not None else settings.retention_days
    if days is None:
        print("switchboard: set SWITCHBOARD_RETENTION_DAYS or pass --days N", file=sys.stderr)
        return 2
    cutoff = datetime.now(UTC) - timedelta(days=days)
    async with sql_stores(settings) as stores:
        assert stores.executor is not None and stores.engine is not None
        result = await retention.purge(stores.executor, stores.engine, cutoff, dry_run=dry_run)
    verb = "would purge" if dry_run else "purged"
    out.write(f"{verb} {result.total} rows older than {days} days "
              f"(before {cutoff.isoformat(timespec='seconds')}):\n")
    for kind in retention.KINDS:
        out.write(f"  {kind:<24} {result.counts.get(kind, 0)}\n")
    if result.busy:
        print("switchboard: another process is purging now; the rest is left to it",
              file=sys.stderr)
        return 1
    return 0


async def run_export(
    settings: Settings, *, conversation: str | None, user: str | None,
    output: Path | None, out: TextIO,
) -> int:
    """`switchboard export`: 0 written, 1 no such conversation."""
    async with sql_stores(settings) as stores:
        assert stores.engine is not None
        unit: Callable[[Any], dict[str, Any] | None]
        if conversation is not None:
            unit = functools.partial(export.export_conversation, conversation_id=conversation)
        else:
            assert user is not None
            unit = functools.partial(export.export_user, user_id=user)
        async with transaction(stores.engine, "exporting") as conn:
            document = await conn.run_sync(unit)
    if document is None:
        print(f"switchboard: no conversation {conversation}", file=sys.stderr)
        return 1
    document = {**document, "exported_at": datetime.now(UTC).isoformat(timespec="seconds")}
    text = json.dumps(document, ensure_ascii=False, indent=2) + "\n"
    if output is None:
        out.write(text)
        return 0
    # Personal data: readable by the owner only.
    fd = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with open(fd, "w", encoding="utf-8") as f:
        f.write(text)
    print(f"wrote {output}", file=sys.stderr)
    return 0


def _summary(counts: dict[str, int]) -> str:
    return ", ".join(f"{kind} {n}" for kind, n in counts.items() if n)
