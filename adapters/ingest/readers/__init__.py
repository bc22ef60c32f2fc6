"""One file into one `Document`, whatever its format, or a `Skipped` saying why not.

Nothing a file contains raises out of here: a corrupt, encrypted, empty or unknown file is
one line in the ingest summary, and the rest of the run goes on.

The format comes from the name: its extension; under a `.gz`, the inner name's (Debian's
`/usr/share/doc` compresses most of its text); the well-known extension-less names
(`README`, `copyright`, `changelog.Debian`, …) are plain text. Any other name without an
extension is read as plain text when its first 8 KiB are UTF-8 with no NUL byte — what a
text file looks like and an executable or an image does not. Extension-less text with
reStructuredText markup in its first 8 KiB (`.. note::`, a `` `link <url>`_ ``) is read
as reStructuredText; a `.txt` stays plain text."""

from __future__ import annotations

import gzip
import importlib
import io
import logging
import re
import zlib
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
    ".rst": ("rst", "rst"),
    ".rest": ("rst", "rst"),
    ".html": ("html", "html"),
    ".htm": ("html", "html"),
    ".pdf": ("pdf", "pdf"),
    ".docx": ("docx", "word"),
}

# Compared lower-case, before any extension: `README.Debian`, `NEWS.md` (.md wins), `COPYING`.
TEXT_NAMES = frozenset({
    "readme", "copying", "copyright", "license", "licence", "news", "changes", "changelog",
    "authors", "install", "todo", "thanks", "contributors", "contributing", "history",
    "notice", "bugs", "faq", "hacking", "maintainers", "credits", "version", "upgrading",
})
PLAIN: tuple[Format, str] = ("text", "plain")
RST: tuple[Format, str] = ("rst", "rst")
# An extension-less file with these is reStructuredText (Python projects' README, NEWS and
# changelog usually are): a directive or comment at the start of a line, a named link, or
# an over- and underlined title. A plain-text file with them reads the same as either.
_RST_HINT = re.compile(
    rb"^\.\. (?:[\w:.+-]+::|_?[\w-]+\b)|`[^`\n]+ <[^>\n]+>`_"
    rb"|^([=~*#^+-])\1{2,}[ \t]*\r?\n[^\n]+\r?\n\1{3,}[ \t]*$",
    re.MULTILINE,
)
# A decompressed document larger than this is refused: a gzip bomb expands ~1000-fold.
MAX_GZIP_BYTES = 32 * 1024 * 1024
_SNIFF_BYTES = 8192


def _reader(module: str) -> Callable[[bytes], Parsed]:
    loaded = importlib.import_module(f"adapters.ingest.readers.{module}")
    read: Callable[[bytes], Parsed] = loaded.read
    return read


def read_document(
    path: Path, *, source: str, url: str | None, access: Access, max_bytes: int | None = None
) -> Document | Skipped:
    """`url` and `access` are the defaults for this file; the file's own (front matter)
    win. The title falls back to the file name."""
    name = path.name
    compressed = name.lower().endswith(".gz") and len(name) > 3
    if compressed:
        name = name[:-3]
    fmt = "file"
    try:
        reader = _format(name, path, compressed=compressed)
        if reader is None:
            suffix = Path(name).suffix or "(no extension)"
            return Skipped(path=path, reason=f"unsupported format {suffix}",
                           kind="unsupported format")
        fmt, module = reader
        if max_bytes is not None and path.stat().st_size > max_bytes:
            return Skipped(path=path, reason=f"larger than {max_bytes} bytes", kind="too large")
        data = path.read_bytes()
        if compressed:
            data = _gunzip(data, min(MAX_GZIP_BYTES, max_bytes or MAX_GZIP_BYTES))
        if not data.strip():
            return Skipped(path=path, reason="empty", kind="empty")
        if reader == PLAIN and not Path(name).suffix and _RST_HINT.search(data, 0, _SNIFF_BYTES):
            fmt, module = RST
        parsed = _reader(module)(data)
    except Unreadable as e:
        return _skip(path, str(e), e.kind)
    except OSError as e:
        return _skip(path, f"unreadable: {e.strerror or e}", "unreadable")
    except Exception as e:  # noqa: BLE001 — a parser's bug on one file must not stop the run
        log.debug("reading %s failed", path, exc_info=True)
        return _skip(path, f"unreadable {fmt}: {type(e).__name__}: {e}", "unreadable")
    title = parsed.title or Path(name).stem or name
    sections = _sections(parsed.sections, title)
    if not sections:
        return _skip(path, "no text", "no text")
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


def _format(name: str, path: Path, *, compressed: bool) -> tuple[Format, str] | None:
    """The reader for a file called `name` (the inner name of a `.gz`)."""
    suffix = Path(name).suffix.lower()
    if reader := READERS.get(suffix):
        return reader
    if name.split(".", 1)[0].lower() in TEXT_NAMES:
        return PLAIN
    if not suffix and not compressed and _looks_like_text(path):
        return PLAIN
    return None


def _looks_like_text(path: Path) -> bool:
    with path.open("rb") as file:
        head = file.read(_SNIFF_BYTES)
    if not head.strip() or b"\x00" in head:
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as e:
        # A character cut at the end of the sample is still text.
        return len(head) == _SNIFF_BYTES and e.start >= len(head) - 3
    return True


def _gunzip(data: bytes, limit: int) -> bytes:
    """Decompressed, and refused past `limit` bytes without expanding further."""
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(data)) as file:
            out = file.read(limit + 1)
    except (gzip.BadGzipFile, EOFError, zlib.error) as e:
        raise Unreadable(f"corrupt gzip: {e}", kind="corrupt gzip") from e
    if len(out) > limit:
        raise Unreadable(f"expands beyond {limit} bytes (gzip)", kind="too large")
    return out


def _skip(path: Path, reason: str, kind: str) -> Skipped:
    reason = " ".join(reason.split())[:200]
    log.debug("skipped %s: %s", path, reason)
    return Skipped(path=path, reason=reason, kind=kind)
