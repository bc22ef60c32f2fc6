"""CommonMark to HTML for the web page, with raw HTML in answers disabled (escaped)."""

from __future__ import annotations

from markdown_it import MarkdownIt

_md = MarkdownIt("commonmark", {"html": False}).enable("table").enable("strikethrough")


def to_html(markdown: str) -> str:
    return _md.render(markdown)
