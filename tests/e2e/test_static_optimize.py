"""With no embedding model configured the index still has a dense vector (the bundled
static embeddings), so an ingest that changed something builds its HNSW graph."""

from __future__ import annotations

from pathlib import Path

from adapters.ingest.pipeline import ingest
from adapters.qdrant.edge import EdgeKnowledgeIndex
from bots.knowledge import _optimize, ingest_options
from tests.e2e.conftest import MakeSettings


class RecordingIndex(EdgeKnowledgeIndex):
    optimized = 0

    async def optimize(self) -> bool:
        self.optimized += 1
        return await super().optimize()


async def test_an_ingest_without_a_model_optimizes_for_the_static_vector(
    make_settings: MakeSettings, tmp_path: Path
) -> None:
    settings = make_settings()
    assert settings.embedding_model is None
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "vpn.md").write_text("# VPN\n\nReset your password at the service desk.\n")
    index = RecordingIndex.open(tmp_path / "qdrant")
    try:
        changed = await ingest([docs], index, options=ingest_options(settings))
        await _optimize(index, settings, changed)
        unchanged = await ingest([docs], index, options=ingest_options(settings))
        await _optimize(index, settings, unchanged)
    finally:
        await index.aclose()

    assert index.dense_model is not None
    assert index.optimized == 1
