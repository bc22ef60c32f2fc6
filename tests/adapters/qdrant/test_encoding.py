"""What the default BM25 encoding finds, on both backends, and that a passage written by an
older encoding is re-encoded by the next ingest rather than kept with stale vectors."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapters.ingest.pipeline import IngestOptions, ingest
from adapters.llm.tokens import EstimatingTokenCounter
from adapters.qdrant import payload as payload_module
from adapters.qdrant.edge import EdgeKnowledgeIndex
from tests.adapters.qdrant.conftest import Backend
from tests.adapters.qdrant.test_contract import ALICE, chunk

pytestmark = pytest.mark.filterwarnings("ignore:Payload indexes have no effect:UserWarning")


async def test_the_words_of_an_identifier_find_it(backend: Backend) -> None:
    index = backend.open()
    await index.upsert([
        chunk("api.md", 0, heading="Client",
              text="Call getHttpResponse() with the request; it retries twice."),
        chunk("faq.md", 0, heading="Answers", text="The response to a request arrives by mail."),
    ])

    [first, *_] = await index.search("http response", audience=ALICE, limit=5)
    assert first.source == "api.md"
    [first, *_] = await index.search("getHttpResponse", audience=ALICE, limit=5)
    assert first.source == "api.md"


async def test_a_long_passage_does_not_outrank_a_short_one_on_the_same_words(
    backend: Backend,
) -> None:
    index = backend.open()
    filler = " ".join(f"topic{n} remark{n}" for n in range(60))
    await index.upsert([
        chunk("long.md", 0, heading="Notes", text=f"Proxy settings. {filler}"),
        chunk("short.md", 0, heading="Network", text="Proxy settings live in the network file."),
    ])

    found = await index.search("proxy settings", audience=ALICE, limit=5)
    assert [p.source for p in found] == ["short.md", "long.md"]


async def test_a_passage_of_an_older_encoding_lists_its_document_as_stale(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    index = backend.open()
    monkeypatch.setattr(payload_module, "ENCODING", "an-older-encoder")
    await index.upsert([chunk("old.md", 0), chunk("old.md", 1)])
    monkeypatch.undo()
    await index.upsert([chunk("new.md", 0, document_hash="h2")])

    assert await index.sources() == {"old.md": "", "new.md": "h2"}


async def test_ingesting_again_re_encodes_documents_of_an_older_encoding(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "vpn.md").write_text("# VPN\n\nReset your password at the service desk.\n")
    options = IngestOptions(count_tokens=EstimatingTokenCounter().count)
    index = EdgeKnowledgeIndex.open(tmp_path / "qdrant")
    try:
        monkeypatch.setattr(payload_module, "ENCODING", "an-older-encoder")
        await ingest([docs], index, options=options)
        monkeypatch.undo()

        again = await ingest([docs], index, options=options)
        unchanged = await ingest([docs], index, options=options)
    finally:
        await index.aclose()

    assert (again.unchanged, again.chunks_added) == (0, 1)
    assert (unchanged.unchanged, unchanged.chunks_added) == (1, 0)
