"""A streamed Markdown answer rendered with rich as it grows.

Re-rendering the whole answer in a `Live` region breaks once it is taller than the window
(rich cannot redraw lines that scrolled off, so they would repeat). Instead each block that
a later block has begun after is finished: it is printed once, for good, above the live
region, which holds only the block still being written (a paragraph, a list, an open code
fence) — never more than a few lines to redraw.
"""

from __future__ import annotations

from markdown_it import MarkdownIt
from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.live import Live
from rich.markdown import Markdown
from rich.segment import Segment

_md = MarkdownIt("commonmark").enable("table").enable("strikethrough")


def markdown(text: str) -> Markdown:
    # Links print their address: not every terminal shows OSC 8 hyperlinks, and the
    # person at it should still see where a link goes.
    return Markdown(text, hyperlinks=False)


class Tight:
    """A renderable without the blank lines rich puts before or after some blocks, so
    pieces printed one by one are spaced as one rendering would space them."""

    def __init__(self, renderable: RenderableType) -> None:
        self._renderable = renderable

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        lines = console.render_lines(self._renderable, options, pad=False)
        while lines and _blank(lines[-1]):
            lines.pop()
        start = next((i for i, line in enumerate(lines) if not _blank(line)), len(lines))
        for line in lines[start:]:
            yield from line
            yield Segment.line()


def _blank(line: list[Segment]) -> bool:
    # A code block's padding is blank text on a background: it stays.
    return all(not s.text.strip() and (s.style is None or s.style.bgcolor is None) for s in line)


class MarkdownStream:
    """One answer's text as it streams: finished blocks printed, the last one live."""

    def __init__(self, live: Live) -> None:
        self._live = live
        self._text = ""
        self._done = 0  # characters of `_text` printed for good
        self._printed = False

    def add(self, delta: str) -> None:
        self._text += delta
        tail = self._text[self._done:]
        start = _last_block_start(tail)
        if start > 0:
            self._print(tail[:start])
            self._done += start
        self._live.update(self._spaced(self._text[self._done:]))

    def _print(self, finished: str) -> None:
        self._live.console.print(self._spaced(finished))
        self._printed = True

    def _spaced(self, text: str) -> RenderableType:
        if not text.strip():
            return ""
        body = Tight(markdown(text))
        return Group("", body) if self._printed else body


def _last_block_start(text: str) -> int:
    """Where the last top-level block of `text` begins (0 if there is only one): the
    blocks before it are finished, since a later one has begun."""
    lines = text.split("\n")
    starts = [t.map[0] for t in _md.parse(text) if t.level == 0 and t.map and t.nesting != -1]
    if len(starts) < 2:
        return 0
    return sum(len(line) + 1 for line in lines[: starts[-1]])
