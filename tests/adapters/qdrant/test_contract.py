"""One contract for both knowledge indexes: the embedded Qdrant Edge shard and a Qdrant
server (qdrant-client's local mode stands in). Same data, same expected results."""

from __future__ import annotations

import itertools
import uuid
from pathlib import Path

import pytest
from qdrant_client import AsyncQdrantClient

from adapters.qdrant import edge as edge_module
from adapters.qdrant import server as server_module
from adapters.qdrant.edge import EdgeKnowledgeIndex
from adapters.qdrant.server import ServerKnowledgeIndex
from core.errors import ConfigurationError
from core.knowledge import Access, Audience, Chunk
from tests.adapters.qdrant.conftest import Backend, Index
from tests.adapters.qdrant.labelled import QUERIES, chunks, reciprocal_rank
from tests.fakes.embeddings import ConceptEmbedder

pytestmark = pytest.mark.filterwarnings("ignore:Payload indexes have no effect:UserWarning")

ALICE = Audience(kind="person", principals=frozenset({"U-alice", "alice@example.com"}))
BOB = Audience(kind="person", principals=frozenset({"U-bob", "bob@example.com", "finance"}))
GENERAL = Audience(kind="channel", principals=frozenset({"slack:T1:C-general"}))
HR_CHANNEL = Audience(kind="channel", principals=frozenset({"slack:T1:C-hr"}))
NOBODY = Audience(kind="person", principals=frozenset())


PUBLIC = Access()


def chunk(
    source: str, position: int = 0, *, text: str = "The expense policy applies to everyone.",
    heading: str = "Overview", access: Access = PUBLIC, document_hash: str = "h1",
) -> Chunk:
    return Chunk(
        id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"{source}#{position}")), source=source,
        position=position, title=source.removesuffix(".md").title(), headings=(heading,),
        text=text, url=f"https://docs.example.com/{source}", document_hash=document_hash,
        access=access,
    )


async def ids(index: Index, audience: Audience, query: str = "expense policy") -> list[str]:
    return [p.id for p in await index.search(query, audience=audience, limit=50)]


async def test_upsert_count_sources_and_delete_source(backend: Backend) -> None:
    index = backend.open()
    await index.upsert([chunk("a.md", 0), chunk("a.md", 1), chunk("b.md", 0, document_hash="h2")])

    assert await index.count() == 3
    assert await index.sources() == {"a.md": "h1", "b.md": "h2"}
    assert await index.delete_source("a.md") == 2
    assert await index.delete_source("missing.md") == 0
    assert await index.count() == 1
    assert await index.sources() == {"b.md": "h2"}


async def test_a_document_without_its_first_passage_is_listed_incomplete(
    backend: Backend,
) -> None:
    index = backend.open()
    await index.upsert([chunk("a.md", 1), chunk("a.md", 2), chunk("b.md", 0, document_hash="h2")])

    assert await index.sources() == {"a.md": "", "b.md": "h2"}


async def test_sources_reads_every_page(backend: Backend, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(edge_module, "SCROLL_PAGE", 2)
    monkeypatch.setattr(server_module, "SCROLL_PAGE", 2)
    index = backend.open()
    await index.upsert(
        [chunk(f"doc{n}.md", p, document_hash=f"h{n}") for n in range(3) for p in range(2)]
    )

    assert await index.sources() == {"doc0.md": "h0", "doc1.md": "h1", "doc2.md": "h2"}


async def test_upserting_the_same_id_overwrites_the_passage(backend: Backend) -> None:
    index = backend.open()
    await index.upsert([chunk("a.md", text="The old expense limit is 100 EUR.")])
    await index.upsert(
        [chunk("a.md", text="The new expense limit is 500 EUR.", document_hash="h2")]
    )

    [passage] = await index.search("expense limit", audience=ALICE, limit=5)
    assert await index.count() == 1
    assert passage.text == "The new expense limit is 500 EUR."
    assert await index.sources() == {"a.md": "h2"}


async def test_bm25_finds_a_passage_by_its_section_title(backend: Backend) -> None:
    index = backend.open()
    await index.upsert([
        chunk("vpn.md", 0, heading="Reset your VPN password",
              text="Ask the service desk; the new one arrives by text message."),
        chunk("mail.md", 0, heading="Mail filters", text="Rules sort incoming messages."),
    ])

    [first, *_] = await index.search("reset VPN password", audience=ALICE, limit=5)
    assert first.id == chunk("vpn.md").id
    assert first.title == "Vpn › Reset your VPN password"
    assert first.text == "Ask the service desk; the new one arrives by text message."
    assert first.url == "https://docs.example.com/vpn.md"
    assert first.source == "vpn.md"
    assert first.score > 0


async def test_a_query_of_stop_words_finds_nothing(backend: Backend) -> None:
    index = backend.open()
    await index.upsert([chunk("a.md")])

    assert await index.search("the and of", audience=ALICE, limit=5) == []


async def test_restricted_passage_reaches_only_its_user(backend: Backend) -> None:
    index = backend.open()
    secret = chunk("salaries.md", access=Access(public=False, users=frozenset({"U-alice"})))
    await index.upsert([secret])

    assert await ids(index, ALICE) == [secret.id]
    for audience in (BOB, NOBODY, GENERAL, HR_CHANNEL):
        assert await ids(index, audience) == []


async def test_channel_passage_reaches_that_channel_but_not_a_person_not_allowed(
    backend: Backend,
) -> None:
    index = backend.open()
    hr = chunk("hr.md", access=Access(public=False, channels=frozenset({"slack:T1:C-hr"})))
    await index.upsert([hr])

    assert await ids(index, HR_CHANNEL) == [hr.id]
    for audience in (GENERAL, ALICE, BOB):
        assert await ids(index, audience) == []


async def test_public_passage_reaches_everyone(backend: Backend) -> None:
    index = backend.open()
    await index.upsert([chunk("handbook.md")])

    for audience in (ALICE, BOB, NOBODY, GENERAL, HR_CHANNEL):
        assert await ids(index, audience) == [chunk("handbook.md").id]


async def test_group_members_see_group_passages_and_channels_do_not(backend: Backend) -> None:
    index = backend.open()
    budget = chunk("budget.md", access=Access(public=False, groups=frozenset({"finance"})))
    await index.upsert([budget])

    assert await ids(index, BOB) == [budget.id]
    # A channel never matches users or groups, even one named like a group.
    named_like_group = Audience(kind="channel", principals=frozenset({"finance"}))
    for audience in (ALICE, named_like_group):
        assert await ids(index, audience) == []


ACCESSES = [
    Access(),
    Access(public=False),
    Access(public=False, users=frozenset({"U-alice"})),
    Access(
        public=False, users=frozenset({"bob@example.com"}), channels=frozenset({"slack:T1:C-hr"})
    ),
    Access(public=False, groups=frozenset({"finance", "legal"})),
    Access(public=False, channels=frozenset({"slack:T1:C-general", "slack:T1:C-hr"})),
    Access(public=True, users=frozenset({"U-alice"})),
]


async def test_the_filter_is_exactly_access_allows(backend: Backend) -> None:
    index = backend.open()
    stored = [chunk(f"doc{n}.md", access=a) for n, a in enumerate(ACCESSES)]
    await index.upsert(stored)

    for audience in (ALICE, BOB, NOBODY, GENERAL, HR_CHANNEL):
        found = {p.id for p in await index.search("expense policy", audience=audience, limit=50)}
        assert found == {c.id for c in stored if c.access.allows(audience)}, audience


async def test_a_document_is_read_whole_in_order_by_those_who_may_see_it(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(edge_module, "SCROLL_PAGE", 2)
    monkeypatch.setattr(server_module, "SCROLL_PAGE", 2)
    index = backend.open()
    restricted = Access(public=False, users=frozenset({"U-alice"}))
    await index.upsert([
        *(chunk("guide.md", p, text=f"Step {p}.") for p in (3, 0, 4, 1, 2)),
        chunk("other.md", text="Not this one."),
        chunk("salaries.md", text="Secret.", access=restricted),
    ])

    passages = await index.passages_of("guide.md", audience=NOBODY, limit=100)
    assert [p.text for p in passages] == [f"Step {p}." for p in range(5)]
    assert {p.source for p in passages} == {"guide.md"}
    assert [p.text for p in await index.passages_of("guide.md", audience=BOB, limit=2)] == [
        "Step 0.", "Step 1."
    ]
    assert [p.text for p in await index.passages_of("salaries.md", audience=ALICE, limit=9)] == [
        "Secret."
    ]
    for audience in (BOB, NOBODY, GENERAL):
        assert await index.passages_of("salaries.md", audience=audience, limit=9) == []
    assert await index.passages_of("missing.md", audience=ALICE, limit=9) == []


async def mrr(index: Index, mode: str) -> float:
    ranks = []
    for query, key in QUERIES:
        passages = await index.search(query, audience=ALICE, limit=10, mode=mode)  # type: ignore[arg-type]
        ranks.append(reciprocal_rank([p.id for p in passages], key))
    return sum(ranks) / len(ranks)


async def test_hybrid_ranking_beats_bm25_alone_and_dense_alone(backend: Backend) -> None:
    embedder = ConceptEmbedder()
    index = backend.open(embedder, ConceptEmbedder.size)
    await index.upsert(chunks())

    bm25, dense, hybrid = [await mrr(index, m) for m in ("bm25", "dense", "auto")]
    # Measured (both backends): BM25 0.500, dense 0.629, hybrid 0.950 (MRR@10).
    assert hybrid > bm25 and hybrid > dense, (bm25, dense, hybrid)
    assert len(QUERIES) >= 8


async def test_both_backends_rank_and_score_identically(tmp_path: Path) -> None:
    embedder = ConceptEmbedder()
    shard = EdgeKnowledgeIndex.open(
        tmp_path / "qdrant", embedder=embedder, dense_size=embedder.size
    )
    server = ServerKnowledgeIndex(
        ":memory:", client=AsyncQdrantClient(location=":memory:"),
        embedder=embedder, dense_size=embedder.size,
    )
    try:
        for index in (shard, server):
            await index.upsert(chunks())
        for (query, _), mode in itertools.product(QUERIES, ("bm25", "dense", "auto")):
            a, b = [
                await i.search(query, audience=ALICE, limit=50, mode=mode)  # type: ignore[arg-type]
                for i in (shard, server)
            ]
            assert [p.id for p in a] == [p.id for p in b], (query, mode)
            assert [p.score for p in a] == pytest.approx([p.score for p in b], rel=1e-4)
    finally:
        await shard.aclose()
        await server.aclose()


async def test_an_embedder_on_an_index_built_without_dense_vectors_is_refused(
    backend: Backend,
) -> None:
    index = backend.open()
    await index.upsert([chunk("a.md")])
    await backend.close(index)

    embedder = ConceptEmbedder()
    with pytest.raises(ConfigurationError, match="rebuilt") as raised:
        hybrid = backend.open(embedder, embedder.size)
        await hybrid.count()
    assert "delete it" in str(raised.value)


async def test_an_embedder_without_its_vector_size_is_refused(backend: Backend) -> None:
    with pytest.raises(ConfigurationError, match="dense_size"):
        backend.open(ConceptEmbedder(), None)


async def test_a_reopened_shard_keeps_its_passages(tmp_path: Path) -> None:
    index = EdgeKnowledgeIndex.open(tmp_path / "qdrant")
    await index.upsert([chunk("a.md", 0), chunk("a.md", 1)])
    await index.aclose()

    reopened = EdgeKnowledgeIndex.open(tmp_path / "qdrant")
    try:
        assert await reopened.count() == 2
        assert await reopened.sources() == {"a.md": "h1"}
        assert len(await reopened.search("expense policy", audience=ALICE, limit=5)) == 2
    finally:
        await reopened.aclose()


async def test_a_second_opener_of_one_shard_gets_a_configuration_error(tmp_path: Path) -> None:
    index = EdgeKnowledgeIndex.open(tmp_path / "qdrant")
    try:
        with pytest.raises(ConfigurationError, match="another Switchboard process"):
            EdgeKnowledgeIndex.open(tmp_path / "qdrant")
    finally:
        await index.aclose()


async def test_optimize_keeps_results(tmp_path: Path) -> None:
    index = EdgeKnowledgeIndex.open(tmp_path / "qdrant")
    try:
        await index.upsert([chunk(f"doc{n}.md") for n in range(20)])
        before = await index.search("expense policy", audience=ALICE, limit=50)
        await index.optimize()
        after = await index.search("expense policy", audience=ALICE, limit=50)
        assert {p.id for p in after} == {p.id for p in before} and len(after) == 20
    finally:
        await index.aclose()
