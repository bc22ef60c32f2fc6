"""One file into one `Document`, whatever its format, or a `Skipped` saying why not.

Nothing a file contains raises out of here: a corrupt, encrypted, empty or unknown file is
one line in the ingest summary, and the rest of the run goes on."""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable
from pathlib import Path

from adapters.ingest.document import Document, Format, Parsed, Section, Skipped, Unreadable
from core.knowledge import Access

log = logging.getLogger(__name__)

# Extension → (format, reader module). Modules load on first use: the server indexes only
# Markdown at start-up and need not carry the PDF, Word and HTML parsers in memory.
READERS: dict[str, tuple[Format, str]] = {
    ".md": ("markdown", "markdown"),
    ".markdown": ("markdown", "markdown"),
    ".txt": ("text", "plain"),
    ".html": ("html", "html"),
    ".htm": ("html", "html"),
    ".pdf": ("pdf", "pdf"),
    ".docx": ("docx", "word"),
}


def _reader(module: str) -> Callable[[bytes], Parsed]:
    loaded = importlib.import_module(f"adapters.ingest.readers.{module}")
    read: Callable[[bytes], Parsed] = loaded.read
    return read


def read_document(
    path: Path, *, source: str, url: str | None, access: Access, max_bytes: int | None = None
) -> Document | Skipped:
    """`url` and `access` are the defaults for this file; the file's own (front matter)
    win. The title falls back to the file name."""
    reader = READERS.get(path.suffix.lower())
    if reader is None:
        return Skipped(path=path, reason=f"unsupported format {path.suffix or '(no extension)'}")
    fmt, module = reader
    try:
        read = _reader(module)
        if max_bytes is not None and path.stat().st_size > max_bytes:
            return Skipped(path=path, reason=f"larger than {max_bytes} bytes")
        data = path.read_bytes()
        if not data.strip():
            return Skipped(path=path, reason="empty")
        parsed = read(data)
    except Unreadable as e:
        return _skip(path, str(e))
    except OSError as e:
        return _skip(path, f"unreadable: {e.strerror or e}")
    except Exception as e:  # noqa: BLE001 — a parser's bug on one file must not stop the run
        log.debug("reading %s failed", path, exc_info=True)
        return _skip(path, f"unreadable {fmt}: {type(e).__name__}: {e}")
    title = parsed.title or path.stem
    sections = _sections(parsed.sections, title)
    if not sections:
        return _skip(path, "no text")
    return Document(
        source=source,
        title=title,
        sections=sections,
        url=parsed.url or url,
        access=parsed.access or access,
        format=fmt,
    )


def _sections(sections: tuple[Section, ...], title: str) -> tuple[Section, ...]:
    """Sections with text, without the title repeated as their outermost heading (a page's
    H1 is usually its title: "Handbook › Handbook › VPN" helps nobody)."""
    kept = []
    for section in sections:
        headings = section.headings
        if headings and headings[0] == title:
            headings = headings[1:]
        if section.text.strip():
            kept.append(Section(headings=headings, text=section.text.strip("\n").rstrip()))
    return tuple(kept)


def _skip(path: Path, reason: str) -> Skipped:
    reason = " ".join(reason.split())[:200]
    log.warning("skipped %s: %s", path, reason)
    return Skipped(path=path, reason=reason)
