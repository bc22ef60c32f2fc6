"""The ingest run: discover files, read and chunk each one off the event loop, and write
what changed through the `KnowledgeStore`.

Incremental by document hash: an unchanged document is not even chunked; a changed one
has its old passages deleted before the new ones are written (a shorter document leaves
nothing stale behind); with `prune`, indexed sources under the given roots whose files are
gone are deleted. A file that still exists but cannot be read keeps its old passages.
After a crash, running the same ingest again completes the work."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import pickle
import signal
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path

from adapters.ingest.chunker import MAX_TOKENS, OVERLAP, chunk, document_hash
from adapters.ingest.document import Skipped
from adapters.ingest.files import SourceFile, discover
from adapters.ingest.readers import read_document
from adapters.ingest.readers.frontmatter import Visibility, make_access
from adapters.ingest.split import Counter
from core.knowledge import Access, Chunk
from core.ports import KnowledgeStore

log = logging.getLogger(__name__)

Progress = Callable[[int, int, Path], None]
"""Called after each file with (files done, files in all, the file)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class IngestOptions:
    """`visibility` None means: restricted if any allow list is given, else public.
    Access from a document's own front matter wins over these defaults."""

    count_tokens: Counter
    source_url_prefix: str | None = None
    visibility: Visibility | None = None
    allow_users: frozenset[str] = frozenset()
    allow_groups: frozenset[str] = frozenset()
    allow_channels: frozenset[str] = frozenset()
    prune: bool = False
    max_tokens: int = MAX_TOKENS
    overlap: int = OVERLAP
    batch_size: int = 256
    max_file_bytes: int | None = 200_000_000

    def __post_init__(self) -> None:
        """Fail before reading anything: a contradictory access default must not be
        applied to a whole folder, and a bad window must not fail every file."""
        self.default_access()
        if self.max_tokens < 1 or not 0 <= self.overlap < self.max_tokens:
            raise ValueError("need max_tokens >= 1 and 0 <= overlap < max_tokens")
        if self.batch_size < 1:
            raise ValueError("need batch_size >= 1")

    def default_access(self) -> Access:
        return make_access(
            self.visibility,
            users=self.allow_users,
            groups=self.allow_groups,
            channels=self.allow_channels,
        )


@dataclass(frozen=True, kw_only=True, slots=True)
class IngestReport:
    files: int
    added: int
    updated: int
    unchanged: int
    removed: int
    chunks_added: int
    chunks_removed: int
    skipped: tuple[Skipped, ...]


@dataclass(frozen=True, kw_only=True, slots=True)
class _Unchanged:
    pass


_Prepared = Skipped | _Unchanged | list[Chunk]
READ_AHEAD = 4  # files read and chunked ahead of the one being written
# A run of at least this many bytes is read in a process of its own: about 2,000 passages,
# a couple of seconds of work, against ~0.5 s to start the process.
PROCESS_BYTES = 2_000_000


@dataclass(kw_only=True)
class _Tally:
    files: int = 0
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0
    chunks_added: int = 0
    chunks_removed: int = 0
    skipped: list[Skipped] = field(default_factory=list)
    pending: list[Chunk] = field(default_factory=list)


async def ingest(
    paths: Sequence[Path | str],
    store: KnowledgeStore,
    *,
    options: IngestOptions,
    progress: Progress | None = None,
) -> IngestReport:
    """Ingest files and directories (recursively) into `store`. Problems with single
    files are reported in `IngestReport.skipped`; only the store's own errors raise."""
    found = await asyncio.to_thread(
        discover, [Path(p) for p in paths], url_prefix=options.source_url_prefix
    )
    known = await store.sources()
    access = options.default_access()
    tally = _Tally(skipped=list(found.missing))
    files = _unique(found.files, tally)
    # Reading and chunking the next files overlaps with encoding and writing this one's
    # passages; in a large run they are read in a process of their own (`_reader`).
    prepared: asyncio.Queue[_Prepared | BaseException] = asyncio.Queue(maxsize=READ_AHEAD)
    async with _reader(files, options) as executor:
        reader = asyncio.create_task(
            _read_ahead(files, known, options, access, prepared, executor)
        )
        try:
            await _take(files, known, prepared, store, tally, options, progress)
        finally:
            reader.cancel()
    await _write(store, tally, options.batch_size, final=True)
    if options.prune:
        present = {file.source for file in found.files}
        for source in sorted(known):
            if source not in present and any(scope.owns(source) for scope in found.scopes):
                tally.chunks_removed += await store.delete_source(source)
                tally.removed += 1
    return IngestReport(
        files=tally.files,
        added=tally.added,
        updated=tally.updated,
        unchanged=tally.unchanged,
        removed=tally.removed,
        chunks_added=tally.chunks_added,
        chunks_removed=tally.chunks_removed,
        skipped=tuple(tally.skipped),
    )


async def _take(
    files: Sequence[SourceFile], known: dict[str, str],
    prepared: asyncio.Queue[_Prepared | BaseException], store: KnowledgeStore, tally: _Tally,
    options: IngestOptions, progress: Progress | None,
) -> None:
    """Each file's outcome, in order: its old passages deleted, its new ones written."""
    for done, file in enumerate(files, 1):
        outcome = await prepared.get()
        if isinstance(outcome, BaseException):
            raise outcome
        tally.files += 1
        match outcome:
            case Skipped():
                tally.skipped.append(outcome)
            case _Unchanged():
                tally.unchanged += 1
            case list():
                if file.source in known:
                    tally.chunks_removed += await store.delete_source(file.source)
                    tally.updated += 1
                else:
                    tally.added += 1
                # The first passage goes last: its hash marks the document complete.
                tally.pending.extend([*outcome[1:], *outcome[:1]])
                await _write(store, tally, options.batch_size, final=False)
        if progress is not None:
            progress(done, len(files), file.path)


async def _read_ahead(
    files: Sequence[SourceFile], known: dict[str, str], options: IngestOptions,
    access: Access, into: asyncio.Queue[_Prepared | BaseException], executor: Executor | None,
) -> None:
    """Each file's outcome in order, at most `READ_AHEAD` files ahead of the writer; an
    unexpected error is handed over in its turn, so the run raises it as before."""
    loop = asyncio.get_running_loop()
    for file in files:
        arguments = (file, known.get(file.source), options, access)
        try:
            try:
                outcome = await loop.run_in_executor(executor, _prepare, *arguments)
            except BrokenProcessPool:  # the reader died on this file (out of memory, a crash)
                log.warning("reading %s stopped the ingest's reader process; the rest is "
                            "read in this one", file.path)
                outcome = Skipped(path=file.path, reason="stopped the reader process")
                executor = None
        except Exception as e:  # noqa: BLE001 — re-raised by the writer
            await into.put(e)
            return
        await into.put(outcome)


@contextlib.asynccontextmanager
async def _reader(
    files: Sequence[SourceFile], options: IngestOptions
) -> AsyncIterator[Executor | None]:
    """A process of its own to read and chunk a large run in, or None (a worker thread of
    this one). Reading and chunking are Python, tokenizer-bound work: in a thread they
    hold the GIL against the encoding and writing they should overlap, and against a
    serving process's answers (benchmarks/README.md, "Ingest rate")."""
    if await asyncio.to_thread(_total_bytes, files) < PROCESS_BYTES or not _travels(options):
        yield None
        return
    spawn = multiprocessing.get_context("spawn")  # never fork a process that has threads
    pool = ProcessPoolExecutor(1, mp_context=spawn, initializer=_ignore_interrupts)
    try:
        yield pool
    finally:
        # Idle at the end of a run; when the run is cut short, the file in hand is finished.
        await asyncio.shield(asyncio.to_thread(pool.shutdown, wait=True, cancel_futures=True))


def _travels(options: IngestOptions) -> bool:
    """Whether the options (their token counter above all) can be sent to the reader."""
    try:
        pickle.dumps(options)
    except Exception:  # noqa: BLE001 — any failure to pickle means: read here
        return False
    return True


def _total_bytes(files: Sequence[SourceFile]) -> int:
    total = 0
    for file in files:
        with contextlib.suppress(OSError):
            total += file.path.stat().st_size
    return total


def _ignore_interrupts() -> None:
    """Ctrl-C reaches the whole process group: the run that started the reader stops it,
    instead of the reader printing its own traceback."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _unique(files: Sequence[SourceFile], tally: _Tally) -> list[SourceFile]:
    """One file per source key: the same file named twice is read once; two files that
    map to one URL cannot both be that URL."""
    taken: dict[str, SourceFile] = {}
    out = []
    for file in files:
        first = taken.setdefault(file.source, file)
        if first is file:
            out.append(file)
        elif first.path.resolve() != file.path.resolve():
            tally.skipped.append(
                Skipped(path=file.path, reason=f"same source as {first.path}: {file.source}")
            )
    return out


def _prepare(
    file: SourceFile, known_hash: str | None, options: IngestOptions, access: Access
) -> _Prepared:
    """Runs in a worker thread, or in the reader process of a large run: reading and
    chunking are CPU work."""
    document = read_document(
        file.path,
        source=file.source,
        url=file.url,
        access=access,
        max_bytes=options.max_file_bytes,
    )
    if isinstance(document, Skipped):
        return document
    window = {"max_tokens": options.max_tokens, "overlap": options.overlap}
    if document_hash(document, **window) == known_hash:
        return _Unchanged()
    try:
        return chunk(document, count_tokens=options.count_tokens, **window)
    except Exception as e:  # noqa: BLE001 — one document's failure must not stop the run
        log.exception("chunking %s failed", file.path)
        return Skipped(path=file.path, reason=f"could not be split: {type(e).__name__}")


async def _write(store: KnowledgeStore, tally: _Tally, size: int, *, final: bool) -> None:
    """Write the queued passages in batches of `size`; the last, short batch only when
    `final`."""
    while tally.pending and (final or len(tally.pending) >= size):
        batch, tally.pending = tally.pending[:size], tally.pending[size:]
        await store.upsert(batch)
        tally.chunks_added += len(batch)
