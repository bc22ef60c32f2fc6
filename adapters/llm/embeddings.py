"""Dense embeddings through an OpenAI-compatible `/v1/embeddings` endpoint (OpenAI,
Azure OpenAI, Ollama, vLLM, LM Studio…), for hybrid retrieval."""

from __future__ import annotations

from collections.abc import Sequence

import openai
from openai import AsyncOpenAI

from core.errors import ModelError

BATCH = 128  # inputs per request: within every common server's limit


class OpenAIEmbedder:
    def __init__(self, client: AsyncOpenAI, model: str) -> None:
        self._client = client
        self._model = model

    @property
    def name(self) -> str:
        return self._model

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        vectors: list[list[float]] = []
        for start in range(0, len(texts), BATCH):
            batch = [t or " " for t in texts[start : start + BATCH]]  # servers refuse ""
            try:
                response = await self._client.embeddings.create(model=self._model, input=batch)
            except openai.APIStatusError as e:
                raise ModelError(
                    f"embedding model {self._model} answered HTTP {e.status_code}"
                ) from e
            except openai.APIError as e:
                raise ModelError(f"embedding model {self._model} is unreachable") from e
            except (ValueError, TypeError, AttributeError) as e:  # the SDK's parse failures
                raise ModelError(f"embedding model {self._model} sent a malformed response") from e
            ordered = sorted(response.data, key=lambda item: item.index)
            if len(ordered) != len(batch):
                raise ModelError(f"embedding model {self._model} returned the wrong count")
            vectors += [list(item.embedding) for item in ordered]
        return vectors

    async def dimension(self) -> int:
        """Asked once at start-up: the index needs the vector size to be created."""
        [vector] = await self.embed(["dimension probe"])
        return len(vector)

    async def aclose(self) -> None:
        await self._client.close()


def create_embedder(
    *, model: str, api_key: str | None, base_url: str | None, timeout: float, max_retries: int
) -> OpenAIEmbedder:
    client = AsyncOpenAI(
        api_key=api_key or "not-needed", base_url=base_url, timeout=timeout,
        max_retries=max_retries,
    )
    return OpenAIEmbedder(client, model)
