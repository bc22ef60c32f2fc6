"""`Ingestor`: every ingest into one index goes through here, one run at a time.

The process that owns the index takes work from several callers — the admin API (a
second `switchboard ingest` or an upload), a source's schedule, the bundled documentation
at start-up. Two runs touching one document at once could interleave its delete and its
writes and leave a longer old version's last passages behind; run one after the other,
each run's incremental hash check sees what the previous one wrote, so nothing is lost or
duplicated. Searches are never held up: they do not take the lock.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

from adapters.ingest.pipeline import IngestOptions, IngestReport, Progress, ingest
from core.ports import KnowledgeStore

AfterRun = Callable[[IngestReport], Awaitable[None]]


class Ingestor:
    """`after`: what follows a run while it still holds the lock (building the dense
    vector's index after a change)."""

    def __init__(self, store: KnowledgeStore, *, after: AfterRun | None = None) -> None:
        self._store = store
        self._after = after
        self._lock = asyncio.Lock()
        self._waiting = 0

    @property
    def queued(self) -> int:
        """Runs waiting for the one in progress (and that one)."""
        return self._waiting

    async def run(
        self,
        paths: Sequence[Path | str],
        *,
        options: IngestOptions,
        progress: Progress | None = None,
    ) -> IngestReport:
        self._waiting += 1
        try:
            async with self._lock:
                report = await ingest(paths, self._store, options=options, progress=progress)
                if self._after is not None:
                    await self._after(report)
                return report
        finally:
            self._waiting -= 1

    async def delete(self, source: str) -> int:
        """Remove one document (between runs, never in the middle of one); how many
        passages went."""
        async with self._lock:
            return await self._store.delete_source(source)

    async def sources(self) -> dict[str, str]:
        return await self._store.sources()

    async def count(self) -> int:
        """Passages indexed in all (for the summary a run ends with)."""
        return await self._store.count()
