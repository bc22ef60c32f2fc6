"""HTML: the readable text of a page, cut into sections at h1–h6.

Parsed with BeautifulSoup on the standard library's `html.parser`: tolerant of broken
markup, pure Python, and the same result wherever it runs. Page furniture (scripts, styles,
navigation, header, footer) is dropped; block elements become paragraphs, list items
`- ` lines, table rows `a | b` lines, and `<pre>` a fenced block the chunker keeps whole."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from bs4 import BeautifulSoup
from bs4.element import (
    Comment,
    Declaration,
    Doctype,
    NavigableString,
    ProcessingInstruction,
    Tag,
)

from adapters.ingest.document import Parsed, Section
from adapters.ingest.readers.layout import Block, join_blocks

_DROP = frozenset({"script", "style", "nav", "header", "footer", "noscript", "template"})
_HEADINGS = {f"h{n}": n for n in range(1, 7)}
_BLOCKS = frozenset({
    "address", "article", "aside", "blockquote", "body", "dd", "details", "div", "dl", "dt",
    "figcaption", "figure", "form", "hr", "li", "main", "ol", "p", "section", "summary",
    "table", "tbody", "thead", "tfoot", "tr", "ul", "br",
})
_CELLS = frozenset({"td", "th"})
_SKIP_STRINGS = (Comment, Declaration, Doctype, ProcessingInstruction)
_SPACE = re.compile(r"\s+")
_BACKTICKS = re.compile(r"`{3,}")


def read(data: bytes) -> Parsed:
    soup = BeautifulSoup(data, "html.parser")
    title_tag = soup.find("title")
    page_title = _words(title_tag.get_text()) if title_tag else ""
    for tag in soup.find_all(_DROP):
        tag.decompose()
    body = soup.body or soup
    first_h1 = body.find("h1")
    walker = _Walker()
    walker.walk(body)
    walker.flush_section()
    return Parsed(
        title=page_title or (_words(first_h1.get_text()) if first_h1 else None) or None,
        sections=tuple(walker.sections),
    )


def _words(text: str) -> str:
    return _SPACE.sub(" ", text).strip()


@dataclass(kw_only=True)
class _Walker:
    sections: list[Section] = field(default_factory=list)
    path: list[tuple[int, str]] = field(default_factory=list)
    paragraphs: list[Block] = field(default_factory=list)
    line: list[str] = field(default_factory=list)
    kind: str = "p"  # what the pending line is: a paragraph or a list item

    def walk(self, node: Tag) -> None:
        for child in node.children:
            if isinstance(child, _SKIP_STRINGS):
                continue
            if isinstance(child, NavigableString):
                self.line.append(str(child))
            elif isinstance(child, Tag):
                self.element(child)

    def element(self, tag: Tag) -> None:
        name = tag.name
        if name in _HEADINGS:
            self.flush_section()
            level = _HEADINGS[name]
            self.path = [*(e for e in self.path if e[0] < level), (level, _words(tag.get_text()))]
        elif name == "pre":
            self.flush_paragraph()
            code = tag.get_text().strip("\n")
            if code.strip():
                fence = "`" * max([3, *(len(run) + 1 for run in _BACKTICKS.findall(code))])
                self.paragraphs.append(("pre", f"{fence}\n{code}\n{fence}"))
        elif name == "tr":
            self.flush_paragraph()
            cells = [_words(c.get_text(" ")) for c in tag.find_all(_CELLS, recursive=False)]
            if any(cells):
                self.paragraphs.append(("tr", " | ".join(cells)))
        elif name == "li":
            self.flush_paragraph()
            self.kind = "li"
            self.walk(tag)
            self.flush_paragraph()
        elif name in _BLOCKS:
            self.flush_paragraph()
            self.walk(tag)
            self.flush_paragraph()
        else:
            self.walk(tag)

    def flush_paragraph(self) -> None:
        text = _words("".join(self.line))
        if text:
            self.paragraphs.append((self.kind, f"- {text}" if self.kind == "li" else text))
        self.line, self.kind = [], "p"

    def flush_section(self) -> None:
        self.flush_paragraph()
        self.sections.append(
            Section(headings=tuple(t for _, t in self.path), text=join_blocks(self.paragraphs))
        )
        self.paragraphs = []
