"""The responder used when no language model is configured.

It never pretends to be a model: it says so, explains how to configure one, and shows the
knowledge passages found for the question, numbered as `[n]` so they are cited.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

from core.knowledge import Passage
from core.model import ChatRequest, ModelEvent, ModelText

NOT_CONFIGURED = (
    "No language model is configured, so I can't write an answer myself. "
    "To connect one, set OPENAI_API_KEY (and optionally SWITCHBOARD_MODEL), or set "
    "OPENAI_BASE_URL to a local OpenAI-compatible server such as Ollama."
)
NOTHING_FOUND = "The knowledge base had nothing for this question."


class OfflineChatModel:
    def __init__(self, *, max_passages: int = 3, snippet_chars: int = 300) -> None:
        self._max_passages = max_passages
        self._snippet_chars = snippet_chars

    @property
    def name(self) -> str:
        return "offline"

    async def stream(self, request: ChatRequest) -> AsyncIterator[ModelEvent]:
        yield ModelText(text=NOT_CONFIGURED)
        if not request.passages:
            yield ModelText(text="\n\n" + NOTHING_FOUND)
            return
        yield ModelText(text="\n\nThese passages from the knowledge base may help:\n")
        for number in self._best(request.passages):
            passage = request.passages[number - 1]
            yield ModelText(text=f"\n{self._line(number, passage)}")

    def _best(self, passages: Sequence[Passage]) -> list[int]:
        """1-based numbers of the best passages, in their original order: the numbers
        must match those of the system prompt for citations to resolve."""
        ranked = sorted(range(len(passages)), key=lambda i: -passages[i].score)
        return sorted(i + 1 for i in ranked[: self._max_passages])

    def _line(self, number: int, passage: Passage) -> str:
        text = " ".join(passage.text.split())
        if len(text) > self._snippet_chars:
            text = text[: self._snippet_chars].rsplit(" ", 1)[0] + " …"
        source = f" ({passage.url})" if passage.url else ""
        return f"[{number}] **{passage.title}** — {text}{source}"
