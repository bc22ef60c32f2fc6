"""What every reader produces: one document, its sections in order, and who may read it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from core.knowledge import Access

Format = Literal["markdown", "text", "html", "pdf", "docx"]


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
    """A file that was not ingested, and why (shown in the ingest summary)."""

    path: Path
    reason: str


@dataclass(frozen=True, kw_only=True, slots=True)
class Parsed:
    """A reader's result before the pipeline adds source, defaults and format. `url` and
    `access` are set only when the file states them itself (Markdown front matter)."""

    title: str | None
    sections: tuple[Section, ...]
    url: str | None = None
    access: Access | None = None


class Unreadable(Exception):
    """A reader's way to say why a file cannot be ingested; the message is the reason."""
