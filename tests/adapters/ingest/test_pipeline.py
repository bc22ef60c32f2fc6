from __future__ import annotations

import multiprocessing
import os
import threading
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from adapters.ingest import IngestOptions, IngestReport, ingest, pipeline
from core.knowledge import Access, Audience
from tests.fakes.knowledge import InMemoryKnowledgeStore

from .conftest import words

OPTIONS = IngestOptions(count_tokens=words)
READABLE = {
    "guides/it-handbook.md", "leave-policy.docx", "notes.txt", "printer-manual.pdf",
    "status-page.html",
}


def uri(root: Path, relative: str) -> str:
    return (root.resolve() / relative).as_uri()


async def run(
    store: InMemoryKnowledgeStore, *paths: Path, options: IngestOptions = OPTIONS
) -> IngestReport:
    return await ingest(list(paths), store, options=options)


async def test_every_readable_format_goes_in_and_the_rest_is_reported(docs: Path) -> None:
    store = InMemoryKnowledgeStore()

    report = await run(store, docs)

    assert set(await store.sources()) == {uri(docs, name) for name in READABLE}
    assert report.files == 8  # hidden .draft.md and .hidden/ are not looked at
    assert (report.added, report.updated, report.unchanged, report.removed) == (5, 0, 0, 0)
    assert report.chunks_added == await store.count() and report.chunks_removed == 0
    reasons = {p.relative_to(docs).as_posix(): r for p, r in
               ((s.path, s.reason) for s in report.skipped)}
    assert reasons.keys() == {"corrupt.pdf", "empty.md", "logo.png"}
    assert reasons["empty.md"] == "empty"
    assert reasons["corrupt.pdf"].startswith("corrupt PDF")
    assert reasons["logo.png"] == "unsupported format .png"


async def test_a_section_is_found_by_its_heading(docs: Path) -> None:
    store = InMemoryKnowledgeStore()
    await run(store, docs)
    staff = Audience(kind="person", principals=frozenset({"staff"}))

    [best, *_] = await store.search("reset VPN password", audience=staff, limit=3)

    assert best.title == "IT Handbook › Network › Reset your VPN password"
    assert best.url == "https://intranet.example.com/it/handbook"
    assert await store.search("reset VPN password", audience=Audience(
        kind="channel", principals=frozenset({"slack:T1:C1"})), limit=3) == []


async def test_progress_is_reported_per_file_and_files_are_read_off_the_loop(
    docs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[int, int, str]] = []
    loop_thread = threading.get_ident()
    read_threads: set[int] = set()
    original = Path.read_bytes

    def spy(self: Path) -> bytes:
        read_threads.add(threading.get_ident())
        return original(self)

    monkeypatch.setattr(Path, "read_bytes", spy)
    await ingest([docs], InMemoryKnowledgeStore(), options=OPTIONS,
                 progress=lambda done, total, path: calls.append((done, total, path.name)))

    assert [(d, t) for d, t, _ in calls] == [(n, 8) for n in range(1, 9)]
    assert calls[0][2] == "corrupt.pdf"  # sorted by path
    assert read_threads and loop_thread not in read_threads


async def test_running_the_same_ingest_again_changes_nothing(docs: Path) -> None:
    store = InMemoryKnowledgeStore()
    await run(store, docs)
    before = dict(store.chunks)
    batches = len(store.batches)

    report = await run(store, docs, options=IngestOptions(count_tokens=words, prune=True))

    assert (report.added, report.updated, report.unchanged, report.removed) == (0, 0, 5, 0)
    assert report.chunks_added == report.chunks_removed == 0
    assert store.chunks == before and len(store.batches) == batches


async def test_a_changed_document_is_replaced_without_stale_chunks(docs: Path) -> None:
    store = InMemoryKnowledgeStore()
    notes = docs / "notes.txt"
    notes.write_text("Long notes\n\n" + "\n\n".join(f"Paragraph {i} " * 30 for i in range(20)))
    await run(store, docs)
    source = uri(docs, "notes.txt")
    old = len(store.of(source))
    assert old > 2

    notes.write_text("Short notes\n\nOnly this is left.")
    report = await run(store, docs)

    assert (report.added, report.updated, report.unchanged) == (0, 1, 4)
    assert report.chunks_removed == old and report.chunks_added == 1
    assert [c.text for c in store.of(source)] == ["Short notes\n\nOnly this is left."]


async def test_prune_removes_deleted_files_only_under_the_given_root(tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    for root in (first, second):
        (root / "sub").mkdir(parents=True)
        (root / "a.md").write_text("# A\n\nalpha")
        (root / "sub" / "b.md").write_text("# B\n\nbeta")
    (tmp_path / "firstborn.md").write_text("a sibling whose path starts like the root's")
    store = InMemoryKnowledgeStore()
    await run(store, first, second, tmp_path / "firstborn.md")
    (first / "sub" / "b.md").unlink()
    (second / "a.md").unlink()
    (tmp_path / "firstborn.md").unlink()

    without_prune = await run(store, first)
    report = await run(store, first, options=IngestOptions(count_tokens=words, prune=True))

    assert without_prune.removed == 0
    assert report.removed == 1 and report.chunks_removed == 1
    assert set(await store.sources()) == {
        uri(first, "a.md"),
        uri(second, "a.md"),  # another root's: not this run's to prune
        uri(second, "sub/b.md"),
        uri(tmp_path, "firstborn.md"),
    }


async def test_prune_keeps_files_that_exist_but_cannot_be_read_now(docs: Path) -> None:
    store = InMemoryKnowledgeStore()
    await run(store, docs)
    (docs / "notes.txt").write_bytes(b"\x00binary now")

    report = await run(store, docs, options=IngestOptions(count_tokens=words, prune=True))

    assert report.removed == 0 and uri(docs, "notes.txt") in await store.sources()


async def test_a_missing_root_is_reported_and_prunes_nothing(docs: Path) -> None:
    store = InMemoryKnowledgeStore()
    await run(store, docs)

    report = await run(store, docs / "gone", options=IngestOptions(count_tokens=words, prune=True))

    assert [s.reason for s in report.skipped] == ["not found"] and report.removed == 0
    assert len(await store.sources()) == 5


async def test_source_keys_do_not_depend_on_the_working_directory(
    docs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = InMemoryKnowledgeStore()
    monkeypatch.chdir(docs.parent)
    await run(store, Path("docs"))
    monkeypatch.chdir(docs / "guides")

    report = await run(store, Path(".."))

    assert report.unchanged == 5 and report.added == 0


async def test_url_prefix_gives_urls_and_portable_source_keys(tmp_path: Path, docs: Path) -> None:
    store = InMemoryKnowledgeStore()
    options = IngestOptions(count_tokens=words, source_url_prefix="https://docs.example.com/kb")

    await run(store, docs, options=options)
    moved = Path(str(docs) + "-moved")
    docs.rename(moved)
    again = await run(store, moved, options=options)

    urls = {c.source: c.url for c in store.chunks.values()}
    assert urls["https://docs.example.com/kb/notes.txt"] == "https://docs.example.com/kb/notes.txt"
    # front matter's url wins; the source key stays the file's
    assert urls["https://docs.example.com/kb/guides/it-handbook.md"] == (
        "https://intranet.example.com/it/handbook"
    )
    assert again.unchanged == 5 and again.added == 0


async def test_access_options_apply_where_front_matter_is_silent(docs: Path) -> None:
    store = InMemoryKnowledgeStore()
    options = IngestOptions(
        count_tokens=words, allow_groups=frozenset({"hr"}), allow_channels=frozenset({"slack:T:C"})
    )

    await run(store, docs, options=options)

    access = {c.source: c.access for c in store.chunks.values()}
    assert access[uri(docs, "notes.txt")] == Access(
        public=False, groups=frozenset({"hr"}), channels=frozenset({"slack:T:C"})
    )
    assert access[uri(docs, "guides/it-handbook.md")] == Access(
        public=False, users=frozenset({"alice@example.com"}), groups=frozenset({"staff"})
    )


async def test_changing_access_alone_reindexes(docs: Path) -> None:
    store = InMemoryKnowledgeStore()
    await run(store, docs)

    report = await run(store, docs, options=IngestOptions(
        count_tokens=words, visibility="restricted", allow_users=frozenset({"bob"})))

    assert report.updated == 4 and report.unchanged == 1  # the handbook sets its own access
    assert all(not c.access.public for c in store.chunks.values())


async def test_chunks_are_written_in_batches(tmp_path: Path) -> None:
    for i in range(7):
        (tmp_path / f"{i}.txt").write_text("\n\n".join(f"para {i} {j}." for j in range(3)))
    store = InMemoryKnowledgeStore()

    report = await run(store, tmp_path, options=IngestOptions(
        count_tokens=words, max_tokens=3, overlap=0, batch_size=4))

    assert report.chunks_added == 21 and store.batches == [4, 4, 4, 4, 4, 1]


async def test_the_same_file_named_twice_is_read_once(docs: Path) -> None:
    report = await run(InMemoryKnowledgeStore(), docs, docs / "notes.txt")

    assert report.files == 8 and report.added == 5


def test_public_visibility_with_allow_lists_is_refused_before_reading() -> None:
    with pytest.raises(ValueError, match="restricted"):
        IngestOptions(count_tokens=words, visibility="public", allow_groups=frozenset({"hr"}))


async def test_an_ingest_cut_short_mid_document_is_completed_by_the_next_run(
    tmp_path: Path,
) -> None:
    (tmp_path / "long.txt").write_text("\n\n".join(f"paragraph {j} text." for j in range(9)))
    options = IngestOptions(count_tokens=words, max_tokens=3, overlap=0, batch_size=4)

    class CrashesAfterOneBatch(InMemoryKnowledgeStore):
        async def upsert(self, chunks: Any) -> None:
            if self.batches:
                raise OSError("the process died")
            await super().upsert(chunks)

    crashed = CrashesAfterOneBatch()
    with pytest.raises(OSError):
        await run(crashed, tmp_path, options=options)
    store = InMemoryKnowledgeStore()
    store.chunks = dict(crashed.chunks)  # what the interrupted run left in the index

    report = await run(store, tmp_path, options=options)

    assert report.updated == 1 and report.unchanged == 0
    assert sorted(c.position for c in store.chunks.values()) == list(range(9))
    assert await run(store, tmp_path, options=options) == IngestReport(
        files=1, added=0, updated=0, unchanged=1, removed=0, chunks_added=0,
        chunks_removed=0, skipped=(),
    )


# ----- a large run is read in a process of its own ------------------------------------


def words_unless_fatal(text: str) -> int:
    """`words`, except that in the reader process a document saying FATAL kills it, as
    a reader crashing on one file would."""
    if "FATAL" in text and multiprocessing.parent_process() is not None:
        os._exit(70)
    return words(text)


class RecordedPool(ProcessPoolExecutor):
    started: list[RecordedPool] = []

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        RecordedPool.started.append(self)


@pytest.fixture
def reader_process(monkeypatch: pytest.MonkeyPatch) -> list[RecordedPool]:
    """Every run is large enough for a reader process; the pools started are listed."""
    RecordedPool.started = []
    monkeypatch.setattr(pipeline, "PROCESS_BYTES", 1)
    monkeypatch.setattr(pipeline, "ProcessPoolExecutor", RecordedPool)
    return RecordedPool.started


async def test_a_large_run_is_read_in_a_process_with_the_same_passages(
    docs: Path, reader_process: list[RecordedPool]
) -> None:
    here = InMemoryKnowledgeStore()
    with pytest.MonkeyPatch.context() as small:
        small.setattr(pipeline, "PROCESS_BYTES", 10**12)
        expected = await run(here, docs)
    assert reader_process == []

    there = InMemoryKnowledgeStore()
    report = await run(there, docs)

    assert len(reader_process) == 1
    assert report == expected
    assert there.chunks == here.chunks
    assert await run(there, docs) == IngestReport(
        files=8, added=0, updated=0, unchanged=5, removed=0, chunks_added=0,
        chunks_removed=0, skipped=expected.skipped,
    )


async def test_a_file_that_kills_the_reader_is_reported_and_the_rest_go_in(
    tmp_path: Path, reader_process: list[RecordedPool], caplog: pytest.LogCaptureFixture
) -> None:
    for name, text in [("a.txt", "Alpha notes."), ("b.txt", "FATAL input."),
                       ("c.txt", "Gamma notes."), ("d.txt", "Delta notes.")]:
        (tmp_path / name).write_text(text)
    store = InMemoryKnowledgeStore()

    report = await run(store, tmp_path, options=IngestOptions(count_tokens=words_unless_fatal))

    assert len(reader_process) == 1
    assert [(s.path.name, s.reason) for s in report.skipped] == [
        ("b.txt", "stopped the reader process")]
    assert sorted(Path(s).name for s in await store.sources()) == ["a.txt", "c.txt", "d.txt"]
    assert "stopped the ingest's reader process" in caplog.text
