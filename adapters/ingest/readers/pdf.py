"""PDF through pypdf: the text of each page. PDFs keep no heading structure that survives
extraction, so each page is a section ("Page n") — which also makes citations point at
a page."""

from __future__ import annotations

import io

from pypdf import PdfReader
from pypdf.errors import PdfReadError

from adapters.ingest.document import Parsed, Section, Unreadable


def read(data: bytes) -> Parsed:
    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted and not reader.decrypt(""):
            # Many PDFs are "encrypted" with an empty password only to restrict printing.
            raise Unreadable("encrypted PDF", kind="encrypted")
        sections = tuple(
            Section(headings=(f"Page {n}",), text=(page.extract_text() or "").strip())
            for n, page in enumerate(reader.pages, 1)
        )
        title = reader.metadata.title if reader.metadata else None
    except PdfReadError as e:
        raise Unreadable(f"corrupt PDF: {e}") from e
    return Parsed(title=(title or "").strip() or None, sections=sections)
