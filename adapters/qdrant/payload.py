"""The payload stored with each passage, and the Passage read back from it.

Access is stored flat (`visibility` plus three keyword lists) so that the filter in
`filters.py` is a handful of indexed keyword matches, not a nested condition.

`visibility` is the keyword "public" or "restricted", not a bool: qdrant-edge-py 0.9.0
turns `MatchValue(True)` into the integer 1, which matches no bool payload, so a bool
field could not be filtered on the embedded shard.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from adapters.qdrant.sparse import ENCODING
from core.knowledge import Chunk, Passage

SOURCE, DOCUMENT_HASH, ENCODED_AS = "source", "document_hash", "encoding"
VISIBILITY, PUBLIC, RESTRICTED = "visibility", "public", "restricted"
ALLOW_USERS, ALLOW_GROUPS, ALLOW_CHANNELS = "allow_users", "allow_groups", "allow_channels"

# Every field a filter touches is indexed (all keywords).
KEYWORD_INDEXES = (VISIBILITY, SOURCE, ALLOW_USERS, ALLOW_GROUPS, ALLOW_CHANNELS)
# `sources()` reads only these, so listing 50k passages does not move their text.
SOURCE_FIELDS = [SOURCE, DOCUMENT_HASH, "position", ENCODED_AS]


def to_payload(chunk: Chunk) -> dict[str, Any]:
    access = chunk.access
    return {
        SOURCE: chunk.source,
        "position": chunk.position,
        "title": chunk.title,
        "headings": list(chunk.headings),
        "text": chunk.text,
        "url": chunk.url,
        DOCUMENT_HASH: chunk.document_hash,
        ENCODED_AS: ENCODING,
        VISIBILITY: PUBLIC if access.public else RESTRICTED,
        ALLOW_USERS: sorted(access.users),
        ALLOW_GROUPS: sorted(access.groups),
        ALLOW_CHANNELS: sorted(access.channels),
    }


def to_passage(point_id: object, payload: Mapping[str, Any] | None, score: float) -> Passage:
    """Edge returns ids as `uuid.UUID`, qdrant-client as `str`: both become the chunk id."""
    payload = payload or {}
    title = " › ".join((str(payload.get("title", "")), *payload.get("headings", ())))
    return Passage(
        id=str(point_id),
        title=title,
        text=str(payload.get("text", "")),
        url=payload.get("url"),
        score=float(score),
        source=payload.get(SOURCE),
    )


def in_order(records: list[tuple[object, dict[str, Any] | None]]) -> list[Passage]:
    """One document's points as passages, in the order of the document."""
    records.sort(key=lambda record: int((record[1] or {}).get("position", 0)))
    return [to_passage(point_id, payload, 0.0) for point_id, payload in records]


def note_source(found: dict[str, str], payload: dict[str, Any]) -> None:
    """Add one passage to a `sources()` listing. A document's hash is read from its first
    passage, which the ingest writes last: a document whose write was cut short has no
    first passage yet, is listed with an empty hash, and is written again next time. So is a
    document written by an older encoder (`sparse.ENCODING`): its vectors are stale."""
    source = str(payload["source"])
    if payload.get("position") == 0:
        current = payload.get(ENCODED_AS) == ENCODING
        found[source] = str(payload["document_hash"]) if current else ""
    else:
        found.setdefault(source, "")
