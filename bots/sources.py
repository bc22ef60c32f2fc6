"""The schedule of the sources kept in sync, run by the process that owns the index
(`serve` and `worker`; the web role has no index).

Every few seconds the scheduler claims the sources that are due (in SQL, so a source added
with `switchboard source add` while it runs is picked up, and of several workers on
PostgreSQL one syncs a given source at a time), syncs each through the process's one
`Ingestor` (incremental, with prune), and records the outcome. A failure is one warning
line per run (a traceback only the first time in a row) and is retried at the next
interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from aiohttp import web

from adapters.ingest.pipeline import IngestReport
from adapters.ingest.service import Ingestor
from adapters.ingest.sources import FolderSource, Source, SourceUnavailable
from adapters.sql.sources import SqlSourceStore
from adapters.sql.types import utcnow
from bots.bootstrap import Switchboard
from bots.settings import Settings
from core.errors import StorageError
from core.ports import TokenCounter
from core.sources import RunCounts, RunResult, SourceRecord

log = logging.getLogger(__name__)

POLL_SECONDS = 5.0  # how soon a source added or asked for is noticed
LEASE = timedelta(seconds=60)  # renewed every third of it while a sync runs

CleanupContext = Callable[[web.Application], AsyncIterator[None]]


@dataclass
class SourceScheduler:
    store: SqlSourceStore
    ingestor: Ingestor
    settings: Settings
    poll: float = POLL_SECONDS
    lease: timedelta = LEASE
    now: Callable[[], datetime] = utcnow
    owner: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}:"
                                                f"{uuid.uuid4().hex[:8]}")
    _counter: TokenCounter | None = None
    _declared: bool = False
    _database_failing: bool = False

    async def run(self) -> None:
        while True:
            await self.run_due()
            await asyncio.sleep(await self._pause())

    async def run_due(self) -> int:
        """Sync every source due now, one after the other; how many ran."""
        ran = 0
        try:
            if not self._declared:
                await self.store.declare(self.settings.declared_sources)
                self._declared = True
            while (record := await self.store.claim(self.owner, self.lease)) is not None:
                await self._sync(record)
                ran += 1
        except Exception as e:  # the schedule outlives a bad round
            # The database is away: say so once, not every few seconds until it is back.
            if not self._database_failing:
                log.warning("sources: %s; trying again every %g s", e, self.poll,
                            exc_info=not isinstance(e, StorageError))
            self._database_failing = True
        else:
            if self._database_failing:
                log.info("sources: the database answers again")
            self._database_failing = False
        return ran

    async def _pause(self) -> float:
        try:
            due = await self.store.next_due()
        except StorageError:
            return self.poll
        if due is None:
            return self.poll
        return min(self.poll, max(0.5, (due - self.now()).total_seconds()))

    async def _sync(self, record: SourceRecord) -> None:
        renewing = asyncio.create_task(self._renew(record.id), name=f"source-{record.id}-lease")
        try:
            report = await self._source(record).sync(self.ingestor)
        except asyncio.CancelledError:
            # Stopping: the next process (or this one, restarted) runs it again at once.
            with contextlib.suppress(Exception):
                async with asyncio.timeout(5):
                    await self.store.release(record.id, self.owner)
            raise
        except SourceUnavailable as e:
            log.warning("source %d: %s", record.id, e)
            result = RunResult(outcome="error", finished_at=self.now(), error=str(e))
        except Exception as e:  # one source's failure must not stop the rest
            again = record.last is not None and record.last.outcome == "error"
            log.warning("source %d (%s) could not be synced: %s: %s", record.id,
                        record.declared.path, type(e).__name__, e, exc_info=not again)
            result = RunResult(outcome="error", finished_at=self.now(),
                               error=f"{type(e).__name__}: {e}")
        else:
            counts = _counts(report)
            level = logging.INFO if counts.added or counts.updated or counts.removed \
                else logging.DEBUG
            log.log(level, "source %d (%s) synced: %s", record.id, record.declared.path,
                    counts.describe())
            result = RunResult(outcome="ok", finished_at=self.now(), counts=counts)
        finally:
            renewing.cancel()
        await self.store.finish(record.id, self.owner, result)

    async def _renew(self, source_id: int) -> None:
        while True:
            await asyncio.sleep(self.lease.total_seconds() / 3)
            try:
                if not await self.store.renew(source_id, self.owner, self.lease):
                    log.warning("source %d: another process took it over (this one's lease "
                                "ran out)", source_id)
                    return
            except StorageError as e:
                log.warning("source %d: could not renew its lease: %s", source_id, e)

    def _source(self, record: SourceRecord) -> Source:
        from bots.knowledge import ingest_options

        if self._counter is None:  # tiktoken's tables, loaded once and only if a source runs
            from adapters.llm.tokens import token_counter_for

            self._counter = token_counter_for(self.settings.model)
        access = record.declared.access
        options = ingest_options(
            self.settings, counter=self._counter, prune=True,
            source_url_prefix=access.source_url_prefix, visibility=access.visibility,
            allow_users=frozenset(access.users), allow_groups=frozenset(access.groups),
            allow_channels=frozenset(access.channels),
        )
        return FolderSource(path=Path(record.declared.path), options=options)


def _counts(report: IngestReport) -> RunCounts:
    return RunCounts(
        files=report.files, added=report.added, updated=report.updated,
        removed=report.removed, unchanged=report.unchanged, skipped=len(report.skipped),
        passages_written=report.chunks_added, passages_removed=report.chunks_removed,
    )


SOURCE_SCHEDULER = web.AppKey("source_scheduler", SourceScheduler)


def sources_context(key: web.AppKey[Switchboard], *, poll: float = POLL_SECONDS) -> CleanupContext:
    """A cleanup context owning the scheduler, in a process that owns the index and keeps
    its stores in SQL (`key`: bots.server's `SWITCHBOARD`, passed in to keep the import
    one-way)."""

    async def scheduling(app: web.Application) -> AsyncIterator[None]:
        sb = app[key]
        engine = sb.stores.engine
        if sb.ingestor is None or engine is None:
            yield
            return
        scheduler = app[SOURCE_SCHEDULER] = SourceScheduler(
            store=SqlSourceStore(engine), ingestor=sb.ingestor, settings=sb.settings, poll=poll
        )
        task = asyncio.create_task(scheduler.run(), name="sources")
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    return scheduling
