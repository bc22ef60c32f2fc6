"""What every reader produces: one document, its sections in order, and who may read it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from core.knowledge import Access

Format = Literal["markdown", "rst", "text", "html", "pdf", "docx"]


@dataclass(frozen=True, kw_only=True, slots=True)
class Section:
    """A run of text under one heading path (outermost first; empty before any heading).
    Markdown and HTML code stay fenced so the chunker can keep them whole."""

    headings: tuple[str, ...]
    text: str


@dataclass(frozen=True, kw_only=True, slots=True)
class Document:
    source: str
    title: str
    sections: tuple[Section, ...]
    url: str | None
    access: Access
    format: Format

    @property
    def text(self) -> str:
        return "\n\n".join(section.text for section in self.sections)


@dataclass(frozen=True, kw_only=True, slots=True)
class Skipped:
    """A file that was not ingested, and why: `reason` in full (listed by `--verbose`),
    `kind` the short reason the summary counts by ("unsupported format", "empty"; the
    reason itself when not given)."""

    path: Path
    reason: str
    kind: str = field(default="", compare=False)

    @property
    def category(self) -> str:
        return self.kind or self.reason


@dataclass(frozen=True, kw_only=True, slots=True)
class Parsed:
    """A reader's result before the pipeline adds source, defaults and format. `url` and
    `access` are set only when the file states them itself (Markdown front matter)."""

    title: str | None
    sections: tuple[Section, ...]
    url: str | None = None
    access: Access | None = None


class Unreadable(Exception):
    """A reader's way to say why a file cannot be ingested; the message is the reason,
    `kind` the short one the summary counts by."""

    def __init__(self, reason: str, *, kind: str = "unreadable") -> None:
        super().__init__(reason)
        self.kind = kind
