"""Threads that name themselves: a new conversation gets a short title from its first
question — the model's, when one is configured, or the question's first line, trimmed.

The title is made when the first answer is written (the model is asked after it, never
before or beside it) and stored with the answer, in the same transaction
(`TurnEnd.title`): a conversation that has a title keeps it.
"""

from __future__ import annotations

import asyncio
import logging
import re

from core.model import ChatMessage, ChatRequest, ModelText
from core.ports import ChatModel

log = logging.getLogger(__name__)

TITLE_CHARS = 60  # what a conversation list or a Slack thread title shows without cutting
MODEL_SECONDS = 5.0  # the model's title, asked beside the answer, at most this long
_MARKUP = re.compile(r"^(?:(?:[#>*\-+]+|\d+[.)])\s+)+|[*`]+")

TITLE_PROMPT = (
    "Write a title of at most six words for a conversation that starts with the message "
    "below. Answer with the title alone: no quotes, no full stop, in the message's language."
)


def first_line_title(text: str) -> str:
    """The first line that says something, without Markdown markers, cut at a word
    within TITLE_CHARS (with an ellipsis)."""
    line = next((ln for ln in text.splitlines() if ln.strip()), "")
    words = " ".join(_MARKUP.sub("", line).split())
    if len(words) <= TITLE_CHARS:
        return words
    cut = words[: TITLE_CHARS - 1].rsplit(" ", 1)[0] or words[: TITLE_CHARS - 1]
    return cut.rstrip(" ,;:.-") + "…"


class Titles:
    def __init__(self, *, model: ChatModel | None = None) -> None:
        """`model`: asked for titles when a real one is configured (not the offline
        responder, which would quote passages)."""
        self._model = model

    @staticmethod
    async def quick(question: str) -> str:
        """The title without asking the model (an answer that was stopped)."""
        return first_line_title(question)

    async def make(self, question: str) -> str:
        """The title for a conversation that starts with `question`; never raises."""
        fallback = first_line_title(question)
        if self._model is None:
            return fallback
        try:
            async with asyncio.timeout(MODEL_SECONDS):
                said = await self._ask(question)
        except Exception as e:  # a title is a nicety: the first line will do
            log.info("no title from the model (%s); using the first line", type(e).__name__)
            return fallback
        return first_line_title(said.strip().strip("\"'“”«»")) or fallback

    async def _ask(self, question: str) -> str:
        assert self._model is not None
        request = ChatRequest(messages=(
            ChatMessage(role="system", content=TITLE_PROMPT),
            ChatMessage(role="user", content=question[:2000]),
        ))
        said = ""
        async for event in self._model.stream(request):
            if isinstance(event, ModelText):
                said += event.text
        return said
