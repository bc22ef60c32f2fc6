"""The default semantic signal: WordLlama's static embeddings, shipped inside its package.

With no embedding model configured, each passage also gets a 256-dimensional vector from
WordLlama's `l2_supercat` model (token embeddings distilled from large language models,
averaged: no transformer runs, so ~3,000 passages a second on one core and ~30 µs a
question). Its weights and tokenizer are files of the `wordllama` wheel, so nothing is
downloaded: `disable_download` makes a missing file an error instead of a network call.

Alone it ranks below BM25 on two of three evaluation sets; fused with BM25 (DBSF, see
plan.py) it raised nDCG@10 on all three and recall@10 most (benchmarks/README.md).
"""

from __future__ import annotations

import asyncio
import functools
import importlib.util
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

STATIC_VECTOR = "static"
STATIC_SIZE = 256
# Above this many texts an embedding call moves to a worker thread (~1 ms per 3 passages);
# a question is embedded in place.
_INLINE = 8
_BATCH = 64


class WordLlamaEmbedder:
    """An `Embedder` over the one model of this process, read on first use (~0.4 s,
    ~40 MB) rather than when an index opens, so commands that never search or write do
    not pay for it."""

    name = "wordllama:l2_supercat_256"
    size = STATIC_SIZE

    def embed_now(self, texts: Sequence[str]) -> list[list[float]]:
        """WordLlama's own `embed()` averages each text's token vectors too, but pads every
        batch to its longest text first (a 64 × 512 × 256 array per batch): averaging
        each text's tokens alone gives the same vectors three times faster."""
        table = _model().embedding
        tokenizer = _unpadded_tokenizer()
        vectors = np.zeros((len(texts), STATIC_SIZE), dtype=np.float32)
        for start in range(0, len(texts), _BATCH):
            batch = tokenizer.encode_batch(list(texts[start : start + _BATCH]),
                                           add_special_tokens=False)
            for row, encoding in enumerate(batch, start):
                if encoding.ids:
                    vectors[row] = table[encoding.ids].mean(axis=0)
        result: list[list[float]] = vectors.tolist()
        return result

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        if len(texts) <= _INLINE:
            return self.embed_now(texts)
        return await asyncio.to_thread(self.embed_now, texts)


@functools.cache
def _model() -> Any:
    """Read-only once loaded, so shared by every index in the process."""
    import wordllama
    from wordllama import WordLlama

    # The wheel keeps its tokenizer under `tokenizers/`, where WordLlama looks only in a
    # cache directory: the package's own folder is that directory.
    folder = Path(wordllama.__file__).parent
    return WordLlama.load(
        config="l2_supercat", dim=STATIC_SIZE, cache_dir=folder, disable_download=True
    )


@functools.cache
def _unpadded_tokenizer() -> Any:
    """The model's tokenizer without the padding WordLlama turns on: each text is
    averaged alone, so padding was only cut off again (a fifth of the embedding time)."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_str(_model().tokenizer.to_str())
    tokenizer.no_padding()
    tokenizer.no_truncation()
    return tokenizer


def static_embedder() -> WordLlamaEmbedder | None:
    """None when the package is missing (a trimmed install): retrieval is then BM25."""
    if importlib.util.find_spec("wordllama") is None:
        log.warning("wordllama is not installed: knowledge search uses BM25 alone")
        return None
    return WordLlamaEmbedder()
