"""The responder used when no language model is configured.

It never pretends to be a model: it says so, explains how to configure one, and shows the
knowledge passages found for the question — one section per passage, headed by its title
and its `[n]` marker, its Markdown (code fences included) kept as written. The marker makes
each passage a citation, so the channel lists its source under the answer; the passage is
quoted once, here, and not again as the source's snippet (`core.knowledge.cited`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

from markdown_it import MarkdownIt

from core.knowledge import Passage
from core.model import ChatRequest, ModelEvent, ModelText

NOT_CONFIGURED = (
    "No language model is configured, so I can't write an answer myself. "
    "To connect one, set OPENAI_API_KEY (and optionally SWITCHBOARD_MODEL), or set "
    "OPENAI_BASE_URL to a local OpenAI-compatible server such as Ollama."
)
NOTHING_FOUND = "The knowledge base had nothing for this question."
FOUND = "These passages from the knowledge base may help:"
MORE = "…"

_md = MarkdownIt("commonmark").enable("table").enable("strikethrough")


class OfflineChatModel:
    def __init__(self, *, max_passages: int = 3, excerpt_chars: int = 800) -> None:
        self._max_passages = max_passages
        self._excerpt_chars = excerpt_chars

    @property
    def name(self) -> str:
        return "offline"

    async def stream(self, request: ChatRequest) -> AsyncIterator[ModelEvent]:
        yield ModelText(text=NOT_CONFIGURED)
        if not request.passages:
            yield ModelText(text="\n\n" + NOTHING_FOUND)
            return
        yield ModelText(text="\n\n" + FOUND)
        for number in self._best(request.passages):
            passage = request.passages[number - 1]
            yield ModelText(text="\n\n" + self._section(number, passage))

    def _best(self, passages: Sequence[Passage]) -> list[int]:
        """1-based numbers of the best passages, in their original order: the numbers
        must match those of the system prompt for citations to resolve."""
        ranked = sorted(range(len(passages)), key=lambda i: -passages[i].score)
        return sorted(i + 1 for i in ranked[: self._max_passages])

    def _section(self, number: int, passage: Passage) -> str:
        # A heading, not a list item: every channel shows one (Slack and Teams as a bold
        # line), and a passage's fences need no indenting under it.
        title = " ".join(passage.title.split()) or "Passage"
        return f"### {title} [{number}]\n\n{excerpt(passage.text, self._excerpt_chars)}"


def excerpt(markdown: str, limit: int) -> str:
    """The passage's leading blocks (paragraphs, lists, fences…) as written, as many as fit
    in `limit` characters and at least one; a first block too long on its own is cut at a
    word, or for a fence between lines and closed again. "…" says something was left out."""
    lines = markdown.strip("\n").split("\n")
    kept: list[str] = []
    for token in _md.parse("\n".join(lines)):
        if token.level != 0 or token.map is None or token.nesting == -1:
            continue
        block = "\n".join(lines[token.map[0]:token.map[1]]).strip("\n")
        if sum(len(k) + 2 for k in kept) + len(block) <= limit:
            kept.append(block)
        elif kept:
            return "\n\n".join(kept) + f"\n\n{MORE}"
        elif token.type == "fence":
            return _cut_fence(block.split("\n")[0], token.content, token.markup, limit)
        else:
            return _cut_prose(block, limit)
    return "\n\n".join(kept)


def _cut_prose(block: str, limit: int) -> str:
    head = block[:limit].rstrip()
    words = head.rsplit(None, 1)
    return f"{words[0] if len(words) == 2 else head} {MORE}"


def _cut_fence(opening: str, content: str, markup: str, limit: int) -> str:
    kept = [opening]
    for line in content.rstrip("\n").split("\n"):
        if len(kept) > 1 and sum(len(k) + 1 for k in kept) + len(line) > limit:
            break
        kept.append(line)
    indent = opening[: len(opening) - len(opening.lstrip())]
    return "\n".join([*kept, indent + markup]) + f"\n\n{MORE}"
