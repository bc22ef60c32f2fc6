"""Files into knowledge passages: read each format into one `Document`, split it along its
headings into token windows (`Chunk`s), and write them through the `KnowledgeStore` port,
skipping what has not changed since the last run."""

from __future__ import annotations

from adapters.ingest.chunker import chunk, document_hash
from adapters.ingest.document import Document, Format, Section, Skipped
from adapters.ingest.pipeline import IngestOptions, IngestReport, Progress, ingest
from adapters.ingest.readers import read_document

__all__ = [
    "Document",
    "Format",
    "IngestOptions",
    "IngestReport",
    "Progress",
    "Section",
    "Skipped",
    "chunk",
    "document_hash",
    "ingest",
    "read_document",
]
