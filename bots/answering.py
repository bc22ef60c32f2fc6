"""What only a process that answers needs: the model, the token counter, the embedding
model and the knowledge index. Imported when a process answers, so a web process never
loads the openai SDK, tiktoken or Qdrant Edge (~60 MB).
"""

from __future__ import annotations

import logging
from contextlib import AsyncExitStack

from adapters.llm.embeddings import create_embedder
from adapters.llm.local_embeddings import create_local_embedder, is_local
from adapters.llm.offline import OfflineChatModel
from adapters.llm.openai_model import create_chat_model
from adapters.llm.tokens import LazyTokenCounter
from adapters.qdrant.edge import EdgeKnowledgeIndex
from bots.bootstrap import KnowledgeIndex
from bots.settings import Settings
from core.errors import ConfigurationError, ModelError
from core.ports import ChatModel, Embedder, TokenCounter

log = logging.getLogger(__name__)

__all__ = ["chat_model", "counter_for", "embedder_for", "open_knowledge_index"]


def counter_for(model_name: str) -> TokenCounter:
    return LazyTokenCounter(model_name)


def chat_model(settings: Settings) -> ChatModel:
    if not settings.model_configured:
        log.warning("no language model configured (OPENAI_API_KEY / OPENAI_BASE_URL): offline mode")
        return OfflineChatModel()
    key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else None
    return create_chat_model(
        model=settings.model,
        api_key=key,
        base_url=settings.openai_base_url,
        timeout=settings.model_timeout,
        max_retries=settings.model_retries,
        requests_per_minute=settings.model_rpm,
    )


def open_knowledge_index(
    settings: Settings, *, embedder: Embedder | None = None, dense_size: int | None = None
) -> KnowledgeIndex:
    if settings.qdrant_url is None:
        return EdgeKnowledgeIndex.open(
            settings.qdrant_path, embedder=embedder, dense_size=dense_size
        )
    # qdrant-client (with numpy and grpc) costs ~50 MB: imported only when it is used.
    from adapters.qdrant.server import ServerKnowledgeIndex

    key = settings.qdrant_api_key.get_secret_value() if settings.qdrant_api_key else None
    return ServerKnowledgeIndex(
        settings.qdrant_url, key, embedder=embedder, dense_size=dense_size
    )


async def embedder_for(
    settings: Settings, stack: AsyncExitStack
) -> tuple[Embedder | None, int | None]:
    """The embedding model for hybrid retrieval, if one is configured, and its size."""
    if settings.embedding_model is None:
        return None, None
    if is_local(settings.embedding_model):  # local:all-MiniLM-L6-v2, the optional extra
        local = create_local_embedder(settings.embedding_model)
        stack.push_async_callback(local.aclose)
        size = await local.dimension()  # loads the model, in a worker thread
        if settings.embedding_dimensions not in (None, size):
            raise ConfigurationError([
                f"SWITCHBOARD_EMBEDDING_DIMENSIONS is {settings.embedding_dimensions}, but "
                f"{settings.embedding_model} makes {size}-dimensional vectors: unset it"
            ])
        return local, size
    key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else None
    embedder = create_embedder(
        model=settings.embedding_model, api_key=key, base_url=settings.openai_base_url,
        timeout=settings.model_timeout, max_retries=settings.model_retries,
    )
    stack.push_async_callback(embedder.aclose)
    if settings.embedding_dimensions is not None:
        return embedder, settings.embedding_dimensions
    try:
        return embedder, await embedder.dimension()
    except ModelError as e:
        raise ConfigurationError([
            f"SWITCHBOARD_EMBEDDING_MODEL: could not ask {settings.embedding_model} for its "
            f"vector size ({e}); start it first or set SWITCHBOARD_EMBEDDING_DIMENSIONS"
        ]) from e
