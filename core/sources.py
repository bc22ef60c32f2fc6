"""Sources that stay in sync: folders (today) re-ingested on a schedule by the process
that owns the index, with what each run did kept in SQL (`switchboard source …`).

This module holds what every side agrees on — how an interval is written, what
`SWITCHBOARD_SOURCES` declares, and what a run leaves behind — and nothing that does I/O.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

MIN_INTERVAL = 10  # seconds: a sync hashes every file, so more often is only churn
DEFAULT_INTERVAL = 600
MAX_INTERVAL = 366 * 86_400
_UNITS = {"d": 86_400, "h": 3600, "m": 60, "s": 1}
_INTERVAL = re.compile(r"(?:\d+[dhms])+|\d+")
_PART = re.compile(r"(\d+)([dhms])")

Origin = Literal["cli", "env"]
Outcome = Literal["ok", "error"]


class SourceError(ValueError):
    """A source that cannot be kept (a bad interval, a path given twice); the message
    says what is expected."""


def parse_interval(raw: str) -> int:
    """Seconds from `90`, `30s`, `10m`, `1h30m`, `2d`; at least MIN_INTERVAL."""
    text = raw.strip().lower()
    if not _INTERVAL.fullmatch(text):
        raise SourceError(f"{raw!r} is not an interval: write 30s, 10m, 1h or 1h30m")
    seconds = int(text) if text.isdigit() else sum(
        int(n) * _UNITS[unit] for n, unit in _PART.findall(text)
    )
    if not MIN_INTERVAL <= seconds <= MAX_INTERVAL:
        raise SourceError(f"{raw!r}: an interval is from {MIN_INTERVAL}s to 366d")
    return seconds


def format_interval(seconds: int) -> str:
    """The shortest spelling `parse_interval` reads back: 600 → `10m`, 5400 → `1h30m`."""
    parts = []
    for unit, size in _UNITS.items():
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts) or "0s"


@dataclass(frozen=True, kw_only=True, slots=True)
class SourceAccess:
    """Defaults for documents whose front matter does not say (as `ingest`'s flags)."""

    visibility: Literal["public", "restricted"] | None = None
    users: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    channels: tuple[str, ...] = ()
    source_url_prefix: str | None = None

    def describe(self) -> str:
        restricted = self.visibility == "restricted" or self.users or self.groups or \
            self.channels
        if not restricted:
            return "public"
        allowed = [*self.users, *(f"group:{g}" for g in self.groups),
                   *(f"channel:{c}" for c in self.channels)]
        return "restricted" + (f" ({', '.join(allowed)})" if allowed else "")


@dataclass(frozen=True, kw_only=True, slots=True)
class DeclaredSource:
    """A folder to keep in sync: from `switchboard source add` or SWITCHBOARD_SOURCES."""

    path: str  # absolute
    interval: int = DEFAULT_INTERVAL  # seconds
    access: SourceAccess = field(default_factory=SourceAccess)


@dataclass(frozen=True, kw_only=True, slots=True)
class RunCounts:
    files: int = 0
    added: int = 0
    updated: int = 0
    removed: int = 0
    unchanged: int = 0
    skipped: int = 0
    passages_written: int = 0
    passages_removed: int = 0

    def describe(self) -> str:
        return (f"{self.added} added, {self.updated} updated, {self.removed} removed, "
                f"{self.unchanged} unchanged, {self.skipped} skipped; "
                f"{self.passages_written} passages written, {self.passages_removed} removed")


@dataclass(frozen=True, kw_only=True, slots=True)
class RunResult:
    """What one sync did: `counts` when it ran, `error` (one line) when it could not."""

    outcome: Outcome
    finished_at: datetime
    counts: RunCounts | None = None
    error: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class SourceRecord:
    """A source as kept in SQL, with its last run."""

    id: int
    origin: Origin
    declared: DeclaredSource
    next_run_at: datetime
    running: bool = False  # a process holds it now
    last_started_at: datetime | None = None
    last: RunResult | None = None


def absolute(path: str) -> str:
    """A path as stored: absolute and normalised, symlinks kept (a link to a mount may be
    repointed, and the folder it names is what the operator meant)."""
    return os.path.abspath(os.path.expanduser(path))


def parse_sources(raw: str) -> tuple[DeclaredSource, ...]:
    """SWITCHBOARD_SOURCES: `PATH[=INTERVAL]` entries separated by commas, e.g.
    `/srv/handbook=10m,/mnt/wiki=1h`. A relative path is taken from the working directory.
    Every problem is reported at once."""
    found: dict[str, DeclaredSource] = {}
    problems = []
    for number, entry in enumerate(filter(None, (e.strip() for e in raw.split(","))), 1):
        path, interval = entry, DEFAULT_INTERVAL
        head, sep, tail = entry.rpartition("=")
        if sep and _INTERVAL.fullmatch(tail.strip().lower()):
            path = head.strip()
            try:
                interval = parse_interval(tail)
            except SourceError as e:
                problems.append(f"entry {number}: {e}")
                continue
        if not path:
            problems.append(f"entry {number} has no path")
            continue
        declared = DeclaredSource(path=absolute(path), interval=interval)
        if declared.path in found:
            problems.append(f"entry {number} repeats {declared.path}")
        found[declared.path] = declared
    if problems:
        raise SourceError("; ".join(problems) + " (use PATH or PATH=INTERVAL, separated by "
                          "commas: /srv/docs=10m,/mnt/wiki=1h)")
    return tuple(found.values())
