"""The default semantic signal: the static embeddings bundled in the `wordllama` package,
fused with BM25 on both backends, and an index built before them still searched."""

from __future__ import annotations

import itertools
import logging
from pathlib import Path

import numpy as np
import pytest
from qdrant_client import AsyncQdrantClient

from adapters.qdrant import edge as edge_module
from adapters.qdrant import server as server_module
from adapters.qdrant.edge import EdgeKnowledgeIndex
from adapters.qdrant.server import ServerKnowledgeIndex
from adapters.qdrant.static import STATIC_SIZE, WordLlamaEmbedder
from core.knowledge import Access
from tests.adapters.qdrant.conftest import Backend
from tests.adapters.qdrant.labelled import QUERIES, chunks
from tests.adapters.qdrant.test_contract import ALICE, chunk

pytestmark = pytest.mark.filterwarnings("ignore:Payload indexes have no effect:UserWarning")

CAR = chunk("car.md", heading="Workshop", text="Car repairs are done in the garage on Fridays.")
PASTA = chunk("pasta.md", heading="Kitchen", text="Cooking spaghetti takes ten minutes.")


async def test_the_bundled_model_embeds_offline_with_its_size() -> None:
    [vector, other] = await WordLlamaEmbedder().embed(["automobile", "spaghetti"])
    assert len(vector) == len(other) == STATIC_SIZE and vector != other


ROOF = chunk("roof.md", heading="Building", text="Roof repairs are scheduled by facilities on Tuesdays.")


async def test_without_a_model_meaning_ranks_the_passages_that_share_words(
    backend: Backend,
) -> None:
    index = backend.open()
    await index.upsert([CAR, ROOF, PASTA])

    by_words = await index.search("automobile repairs", audience=ALICE, limit=5, mode="bm25")
    assert {p.source for p in by_words} == {"car.md", "roof.md"}
    assert by_words[0].score == pytest.approx(by_words[1].score)  # "repairs" in both
    [first, *_] = await index.search("automobile repairs", audience=ALICE, limit=5)
    assert first.source == "car.md"
    assert index.dense_model == "wordllama:l2_supercat_256"


async def test_without_a_model_a_question_sharing_no_word_with_what_its_reader_may_see_finds_nothing(
    backend: Backend,
) -> None:
    # The static model's nearest passages always exist, and for such a question they are
    # noise an offline answer would quote: "automobile" is nearer the car than the pasta,
    # but off-topic questions score as near (benchmarks/README.md, "Questions that share
    # no word").
    index = backend.open()
    secret = chunk("fleet.md", heading="Fleet", text="Automobile leases.",
                   access=Access(public=False, users=frozenset({"U-bob"})))
    await index.upsert([CAR, PASTA, secret])

    assert await index.search("automobile", audience=ALICE, limit=5) == []
    assert await index.search("what is the capital of France", audience=ALICE, limit=5) == []
    assert await index.search("automobile", audience=ALICE, limit=5, mode="dense")


async def test_an_index_built_before_the_static_embeddings_is_searched_by_bm25_and_says_so(
    backend: Backend, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(edge_module, "static_embedder", lambda: None)
    monkeypatch.setattr(server_module, "static_embedder", lambda: None)
    old = backend.open()
    await old.upsert([CAR, PASTA])
    await backend.close(old)
    monkeypatch.undo()

    with caplog.at_level(logging.WARNING):
        index = backend.open()
        found = await index.search("garage repairs", audience=ALICE, limit=5)

    assert [p.source for p in found] == ["car.md"]
    assert await index.search("automobile", audience=ALICE, limit=5) == []
    assert index.dense_model is None
    assert "without the bundled static embeddings" in caplog.text


async def test_both_backends_rank_and_score_alike_with_the_static_embeddings(
    tmp_path: Path,
) -> None:
    shard = EdgeKnowledgeIndex.open(tmp_path / "qdrant")
    server = ServerKnowledgeIndex(":memory:", client=AsyncQdrantClient(location=":memory:"))
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


async def test_averaging_each_text_alone_gives_wordllamas_own_vectors() -> None:
    from adapters.qdrant.static import _model

    texts = ["How do I get a newline in my prompt?", "x", "Car repairs " * 300]
    ours = np.array(await WordLlamaEmbedder().embed(texts))
    assert np.abs(ours - _model().embed(texts)).max() < 1e-6
