"""Markdown: front matter, then sections cut at the top-level headings markdown-it finds
(ATX and setext; a `#` line inside a code fence is not a heading). Section bodies are the
original Markdown lines, so code fences reach the chunker intact."""

from __future__ import annotations

from markdown_it import MarkdownIt
from markdown_it.token import Token

from adapters.ingest.document import Parsed, Section
from adapters.ingest.readers.frontmatter import split_front_matter
from adapters.ingest.readers.plain import decode

_md = MarkdownIt("commonmark").enable("table")


def read(data: bytes) -> Parsed:
    front, body = split_front_matter(decode(data))
    lines = body.splitlines()
    tokens = _md.parse(body)
    headings = [
        (int(token.tag[1]), _plain(tokens[i + 1]), token.map)
        for i, token in enumerate(tokens)
        if token.type == "heading_open" and token.level == 0 and token.map is not None
    ]
    sections: list[Section] = []
    first_line = headings[0][2][0] if headings else len(lines)
    sections.append(Section(headings=(), text=_join(lines[:first_line])))
    path: list[tuple[int, str]] = []
    for n, (level, title, (_, end)) in enumerate(headings):
        path = [*(entry for entry in path if entry[0] < level), (level, title)]
        stop = headings[n + 1][2][0] if n + 1 < len(headings) else len(lines)
        sections.append(
            Section(headings=tuple(t for _, t in path), text=_join(lines[end:stop]))
        )
    first_h1 = next((title for level, title, _ in headings if level == 1 and title), None)
    return Parsed(
        title=front.title or first_h1,
        sections=tuple(sections),
        url=front.url,
        access=front.access,
    )


def _join(lines: list[str]) -> str:
    return "\n".join(lines).strip("\n").rstrip()


def _plain(inline: Token) -> str:
    """A heading's words without emphasis or link markup: what a reader searches for."""
    words = "".join(
        " " if child.type in ("softbreak", "hardbreak") else child.content
        for child in inline.children or ()
        if child.type in ("text", "code_inline", "softbreak", "hardbreak")
    )
    return " ".join(words.split())
