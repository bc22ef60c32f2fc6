"""Plain text: one section; a short first line is the title (how most notes start)."""

from __future__ import annotations

from adapters.ingest.document import Parsed, Section, Unreadable

_TITLE_CHARS = 80


def read(data: bytes) -> Parsed:
    text = decode(data).strip()
    first = text.split("\n", 1)[0].strip()
    title = first if 0 < len(first) <= _TITLE_CHARS else None
    return Parsed(title=title, sections=(Section(headings=(), text=text),))


def decode(data: bytes) -> str:
    """UTF-8 (with or without BOM), else Windows-1252, which office machines still write.
    NUL bytes mean a binary file under a text name."""
    if b"\x00" in data:
        raise Unreadable("binary data in a text file", kind="not text")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        try:
            text = data.decode("cp1252")
        except UnicodeDecodeError as e:
            raise Unreadable("not UTF-8 or Windows-1252 text", kind="not text") from e
    return text.replace("\r\n", "\n").replace("\r", "\n")
