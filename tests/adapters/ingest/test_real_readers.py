"""reStructuredText, gzip-compressed and extension-less documents, read from real files
(`tests/fixtures/ingest/README.md` says where each comes from) through the ingest
pipeline into a store, as `switchboard ingest` reads them."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import pytest

from adapters.ingest import IngestOptions, ingest
from adapters.ingest.readers import MAX_GZIP_BYTES
from core.knowledge import Chunk
from tests.fakes.knowledge import InMemoryKnowledgeStore

from .conftest import words

REAL = Path(__file__).resolve().parents[2] / "fixtures" / "ingest" / "real"
OPTIONS = IngestOptions(count_tokens=words, max_tokens=400, overlap=40)


@pytest.fixture
async def store() -> InMemoryKnowledgeStore:
    store = InMemoryKnowledgeStore()
    report = await ingest([REAL], store, options=OPTIONS)
    assert report.skipped == ()
    assert report.added == 8
    return store


def passages(store: InMemoryKnowledgeStore, relative: str) -> list[Chunk]:
    chunks = store.of((REAL / relative).as_uri())
    assert chunks, f"{relative} was not ingested"
    return chunks


def text(store: InMemoryKnowledgeStore, relative: str) -> str:
    return "\n".join(chunk.text for chunk in passages(store, relative))


async def test_a_sphinx_page_is_titled_by_its_heading_not_its_first_directive(
    store: InMemoryKnowledgeStore,
) -> None:
    crcmod = passages(store, "crcmod/crcmod.rst")

    # The source's first lines are ".. module:: crcmod" and ":mod:`crcmod` -- CRC …".
    assert {chunk.title for chunk in crcmod} == {"crcmod -- CRC calculation"}
    assert {chunk.headings for chunk in crcmod} >= {
        (), ("mkCrcFun -- CRC function factory",),
        ("mkCrcFun -- CRC function factory", "Examples"), ("Class Crc",),
    }


async def test_directives_are_dropped_and_roles_keep_their_text(
    store: InMemoryKnowledgeStore,
) -> None:
    crcmod = text(store, "crcmod/crcmod.rst")

    for markup in (".. ", ":func:", ":class:", ":mod:", ":synopsis:", "moduleauthor",
                   "Raymond L Buvel"):
        assert markup not in crcmod
    assert "a function factory `mkCrcFun` and a class `Crc`" in crcmod
    # An admonition keeps its words; an API directive keeps its signature, searchable.
    assert "**Note:** This documentation normally shows Python 2.x usage." in crcmod
    assert "`mkCrcFun(poly[, initCrc, rev, xorOut])`" in crcmod


async def test_literal_blocks_and_code_directives_become_fenced_code(
    store: InMemoryKnowledgeStore,
) -> None:
    crcmod = text(store, "crcmod/crcmod.rst")
    build_meta = text(store, "setuptools/build_meta.rst.gz")

    # "E.g.::" then an indented block: the prose keeps one colon, the block is fenced.
    assert "buffer protocol. E.g.:\n\n```\n>>> crc_value = crc_function(b'123456789')" in crcmod
    # ".. code-block:: toml" keeps its language; its options do not reach the text.
    assert '```toml\n[build-system]\nrequires = ["setuptools"]' in build_meta
    assert "```python\nfrom setuptools import build_meta as _orig" in build_meta
    assert ":caption:" not in build_meta and "code-block" not in build_meta


async def test_an_admonition_reads_as_one_paragraph_with_its_roles_resolved(
    store: InMemoryKnowledgeStore,
) -> None:
    build_meta = text(store, "setuptools/build_meta.rst.gz")

    # ".. tip:: Before … at\n   :pep:`PEP 508 <508#environment-markers>`. Most …"
    assert (
        "**Tip:** Before implementing an *in-tree* backend, have a look at\n"
        "PEP 508. Most of the time, dependencies"
    ) in build_meta
    assert "environment-markers" not in build_meta and ".. tip" not in build_meta


async def test_gzip_documents_are_read_by_their_inner_name(
    store: InMemoryKnowledgeStore,
) -> None:
    [rst] = {chunk.title for chunk in passages(store, "setuptools/build_meta.rst.gz")}
    changelog = passages(store, "setuptools/changelog.Debian.gz")

    assert rst == "Build System Support"  # read as reStructuredText, not as plain text
    assert changelog[0].title == "setuptools (66.1.1-1+deb12u2) bookworm; urgency=medium"
    assert "Fix CVE-2025-47273" in changelog[0].text


async def test_well_known_and_sniffed_extension_less_files_are_read_as_text(
    store: InMemoryKnowledgeStore,
) -> None:
    assert "This package was debianized by Matthias Klose" in text(store, "setuptools/copyright")
    # crcmod's README is reStructuredText (an over- and underlined title): read as such.
    assert passages(store, "crcmod/README")[0].title == "crcmod for Calculating CRCs"
    assert "Permission is hereby granted" in text(store, "crcmod/LICENSE")
    # Not a well-known name: read because its content is UTF-8 text without NUL bytes.
    assert passages(store, "gnupg/KEYSERVER")[0].title == "Format of keyserver colon listings"


async def test_an_extension_less_file_written_in_restructuredtext_is_read_as_such(
    store: InMemoryKnowledgeStore,
) -> None:
    # wadllib's changelog.gz is its NEWS.rst: an over- and underlined title, then releases.
    news = passages(store, "wadllib/changelog.gz")

    assert {chunk.title for chunk in news} == {"NEWS for wadllib"}
    assert news[0].headings == ("1.3.6 (2021-09-13)",)
    assert "=====" not in "\n".join(chunk.text for chunk in news)
    # A Debian changelog has no such markup and stays plain text: one section, no headings.
    assert {c.headings for c in passages(store, "setuptools/changelog.Debian.gz")} == {()}


async def test_extension_less_binaries_and_unknown_inner_names_are_skipped(
    tmp_path: Path,
) -> None:
    (tmp_path / "tool").write_bytes(b"\x7fELF\x02\x01\x01\x00\x00\x00" + bytes(200))
    (tmp_path / "photo").write_bytes(bytes(range(256)) * 4)  # not UTF-8
    (tmp_path / "logo.png.gz").write_bytes(gzip.compress(b"\x89PNG\r\n\x1a\n"))
    (tmp_path / "broken.txt.gz").write_bytes(b"\x1f\x8b\x08\x00 not really gzip")
    store = InMemoryKnowledgeStore()

    report = await ingest([tmp_path], store, options=OPTIONS)

    kinds = {skipped.path.name: (skipped.kind, skipped.reason) for skipped in report.skipped}
    assert kinds == {
        "tool": ("unsupported format", "unsupported format (no extension)"),
        "photo": ("unsupported format", "unsupported format (no extension)"),
        "logo.png.gz": ("unsupported format", "unsupported format .png"),
        "broken.txt.gz": ("corrupt gzip", kinds["broken.txt.gz"][1]),
    }
    assert await store.count() == 0


async def test_a_gzip_bomb_is_refused_without_expanding_it(tmp_path: Path) -> None:
    bomb = tmp_path / "notes.txt.gz"
    block = b"A" * (1024 * 1024)
    with gzip.open(bomb, "wb", compresslevel=9) as out:
        for _ in range(MAX_GZIP_BYTES // len(block) + 1):
            out.write(block)
    assert bomb.stat().st_size < 200_000  # ~32 MiB of text in a small file
    shutil.copy(REAL / "setuptools" / "changelog.Debian.gz", tmp_path)
    store = InMemoryKnowledgeStore()

    report = await ingest([tmp_path], store, options=OPTIONS)

    [refused] = report.skipped
    assert (refused.path, refused.kind) == (bomb, "too large")
    assert refused.reason == f"expands beyond {MAX_GZIP_BYTES} bytes (gzip)"
    assert report.added == 1  # the rest of the run goes on


async def test_the_file_size_limit_also_caps_what_a_gzip_expands_to(tmp_path: Path) -> None:
    shutil.copy(REAL / "setuptools" / "changelog.Debian.gz", tmp_path)
    options = IngestOptions(count_tokens=words, max_file_bytes=3000)  # the .gz is ~1.8 kB

    report = await ingest([tmp_path], InMemoryKnowledgeStore(), options=options)

    [refused] = report.skipped
    assert refused.reason == "expands beyond 3000 bytes (gzip)"


async def test_page_metadata_goes_and_a_figure_keeps_its_caption(tmp_path: Path) -> None:
    # The shape of a Sphinx page (Sphinx's own docs start this way), written here small.
    (tmp_path / "page.rst").write_text(
        ":orphan:\n:tocdepth: 2\n\n.. _page-label:\n\nInstalling\n==========\n\n"
        ".. figure:: /_static/flow.png\n   :alt: flow\n   :width: 80%\n\n"
        "   The install flow, from download to first run.\n\n"
        ".. only:: html\n\n   Run ``setup --check`` first.\n",
        encoding="utf-8",
    )
    store = InMemoryKnowledgeStore()

    await ingest([tmp_path], store, options=OPTIONS)

    [page] = store.of((tmp_path / "page.rst").resolve().as_uri())
    assert page.title == "Installing"
    assert page.text == (
        "The install flow, from download to first run.\n\nRun `setup --check` first."
    )
