"""Dense embeddings through the real openai SDK against the fake OpenAI-compatible server."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from adapters.llm.embeddings import BATCH, OpenAIEmbedder, create_embedder
from core.errors import ModelError
from tests.fakes.openai_server import FakeOpenAI, hashed_embeddings


@pytest.fixture
async def fake() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI() as server:
        yield server


def embedder(fake: FakeOpenAI) -> OpenAIEmbedder:
    return create_embedder(model="fake-embed", api_key="k", base_url=fake.base_url,
                           timeout=5, max_retries=0)


async def test_texts_are_embedded_in_order_in_batches(fake: FakeOpenAI) -> None:
    texts = [f"text number {n}" for n in range(BATCH + 5)]
    model = embedder(fake)

    vectors = await model.embed(texts)
    await model.aclose()

    assert vectors == hashed_embeddings(texts)
    assert [len(r.json["input"]) for r in fake.requests] == [BATCH, 5]
    assert fake.requests[0].json["model"] == "fake-embed"


async def test_the_dimension_is_probed_once(fake: FakeOpenAI) -> None:
    model = embedder(fake)
    assert await model.dimension() == 64
    await model.aclose()


async def test_a_server_error_is_a_model_error_without_detail(fake: FakeOpenAI) -> None:
    def broken(texts: list[str]) -> list[list[float]]:
        return []  # the wrong count

    fake.embed = broken
    model = embedder(fake)
    with pytest.raises(ModelError, match="malformed|wrong count"):
        await model.embed(["a"])
    await model.aclose()
