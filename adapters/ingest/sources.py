"""What a source is to the scheduler: something that brings the index in step with
itself in one call. `FolderSource` is the one kind today.

A remote connector (a Git repository, a wiki, a shared drive) is one more class with the
same three members. The simplest shape mirrors the remote into a folder of its own under
the data directory (a `git pull`, or one Markdown file per wiki page with `url`, `title`
and access in its front matter) and hands that folder to the same incremental, pruning
ingest with `source_url_prefix` set to the remote's address, so citations link to the
original and a page deleted upstream leaves the index at the next sync.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from adapters.ingest.pipeline import IngestOptions, IngestReport
from adapters.ingest.service import Ingestor


class SourceUnavailable(Exception):
    """The source cannot be read now (a folder missing or unmounted, a remote away):
    nothing was written or removed. The message is one line for the operator."""


class Source(Protocol):
    @property
    def key(self) -> str:
        """Stable identity, e.g. `folder:/srv/handbook`."""
        ...

    @property
    def description(self) -> str:
        """What the operator recognises it by (in logs)."""
        ...

    async def sync(self, ingestor: Ingestor) -> IngestReport:
        """Bring the index in step: add and replace what changed, remove what is gone.
        Raises `SourceUnavailable` when the source cannot be read at all."""
        ...


@dataclass(frozen=True, kw_only=True, slots=True)
class FolderSource:
    """A folder (or one file) on this machine, ingested with `options` (prune on)."""

    path: Path
    options: IngestOptions

    @property
    def key(self) -> str:
        return f"folder:{self.path}"

    @property
    def description(self) -> str:
        return str(self.path)

    async def sync(self, ingestor: Ingestor) -> IngestReport:
        await asyncio.to_thread(_readable, self.path)
        return await ingestor.run([self.path], options=self.options)


def _readable(path: Path) -> None:
    """A missing folder, or one with nothing in it, is what an unmounted disk looks like:
    syncing it with prune would empty its part of the index."""
    if not path.exists():
        raise SourceUnavailable(f"{path} does not exist (not mounted?); nothing was removed")
    if path.is_dir():
        try:
            with os.scandir(path) as entries:
                empty = not any(not entry.name.startswith(".") for entry in entries)
        except OSError as e:
            raise SourceUnavailable(f"{path} cannot be read ({e.strerror})") from e
        if empty:
            raise SourceUnavailable(f"{path} is empty (not mounted?); nothing was removed")
