"""Threads that name themselves: a new conversation gets a short title from its first
question — the model's, when one is configured, or the question's first line, trimmed.

The model is asked once the answer's own text is coming, beside the rest of it, and only
while the assistant is not busy; the title is stored with the answer, in the same
transaction (`TurnEnd.title`), and a conversation that has a title keeps it.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable

from core.model import ChatMessage, ChatRequest, ModelText
from core.ports import ChatModel

log = logging.getLogger(__name__)

TITLE_CHARS = 60  # what a conversation list or a Slack thread title shows without cutting
MODEL_SECONDS = 5.0  # the model's title, asked beside the answer, at most this long
GRACE = 0.5  # how much longer than its answer the first answer waits for the model's title
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
    def __init__(
        self, *, model: ChatModel | None = None, quiet: Callable[[], bool] = lambda: True
    ) -> None:
        """`model`: asked for titles when a real one is configured (not the offline
        responder, which would quote passages). `quiet`: whether there is room to ask it
        now: under load a conversation keeps its first line, and the model's time goes
        to answers."""
        self._model = model
        self._quiet = quiet

    def begin(self, question: str) -> Titling:
        return Titling(self, question)

    def asks_model(self) -> bool:
        return self._model is not None and self._quiet()

    async def ask(self, question: str) -> str:
        """The model's title for a conversation that starts with `question`, or its first
        line when the model fails or is slow; never raises."""
        fallback = first_line_title(question)
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


class Titling:
    """One new conversation's title while its first answer is written. The model is asked
    once the answer's own text is coming (its request is the model's first), beside the
    rest of the answer; the answer waits for it at most `GRACE` seconds more."""

    def __init__(self, titles: Titles, question: str) -> None:
        self._titles = titles
        self._question = question
        self._task: asyncio.Task[str] | None = None

    def answer_began(self) -> None:
        if self._task is None and self._titles.asks_model():
            self._task = asyncio.create_task(self._titles.ask(self._question), name="title")

    async def title(self, *, wait: float = GRACE) -> str:
        """The model's title if it is ready within `wait` seconds, else the first line."""
        if self._task is not None:
            try:
                return await asyncio.wait_for(asyncio.shield(self._task), wait)
            except TimeoutError:
                log.info("the model's title was not ready with the answer; the first line")
            finally:
                self.cancel()
        return first_line_title(self._question)

    def cancel(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
