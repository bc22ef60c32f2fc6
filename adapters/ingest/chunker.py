"""A document into passages: one section at a time (a passage never spans two sections, and
carries the section's heading path so it is found by its heading), packed into token
windows that overlap a little so a sentence cut at a window's edge is whole in one of them.

Defaults: 300 tokens with 40 of overlap. Passages are retrieved several at a time into a
prompt with a budget; ~300 tokens is a few paragraphs — one answerable step of a how-to —
small enough for BM25 and embeddings to stay specific, large enough to carry its context.
The overlap (~13%) repeats about one or two sentences."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections import deque

from adapters.ingest.document import Document
from adapters.ingest.split import SENTENCE, WORD, Counter, Piece, pieces, split_at
from core.knowledge import Chunk

MAX_TOKENS = 300
OVERLAP = 40
# Fixed forever: chunk ids derive from it, and changing it would orphan every index.
_ID_NAMESPACE = uuid.UUID("0c6f7a4e-5f8b-5d52-9a53-2a8e1b0f3c11")


def chunk(
    document: Document,
    *,
    count_tokens: Counter,
    max_tokens: int = MAX_TOKENS,
    overlap: int = OVERLAP,
) -> list[Chunk]:
    """The document's passages in order. Each passage's text has at most `max_tokens`
    tokens by `count_tokens` (the heading path travels beside it, not inside it)."""
    if max_tokens < 1 or not 0 <= overlap < max_tokens:
        raise ValueError("need max_tokens >= 1 and 0 <= overlap < max_tokens")
    digest = document_hash(document, max_tokens=max_tokens, overlap=overlap)
    texts = [
        (section.headings, text)
        for section in document.sections
        for text in _windows(
            section.text, count=count_tokens, max_tokens=max_tokens, overlap=overlap
        )
    ]
    return [
        Chunk(
            id=chunk_id(document.source, position),
            source=document.source,
            position=position,
            title=document.title,
            headings=headings,
            text=text,
            url=document.url,
            document_hash=digest,
            access=document.access,
        )
        for position, (headings, text) in enumerate(texts)
    ]


def chunk_id(source: str, position: int) -> str:
    return str(uuid.uuid5(_ID_NAMESPACE, f"{source}\n{position}"))


def document_hash(document: Document, *, max_tokens: int, overlap: int) -> str:
    """Covers everything a passage carries — text, title, url, access — and the window,
    so changing any of them (access alone, or the chunk size) re-indexes the document."""
    access = document.access
    payload = {
        "v": 1,
        "title": document.title,
        "url": document.url,
        "format": document.format,
        "access": {
            "public": access.public,
            "users": sorted(access.users),
            "groups": sorted(access.groups),
            "channels": sorted(access.channels),
        },
        "sections": [[list(s.headings), s.text] for s in document.sections],
        "window": [max_tokens, overlap],
    }
    encoded = json.dumps(payload, ensure_ascii=False, sort_keys=True).encode()
    return hashlib.sha256(encoded).hexdigest()


def _windows(text: str, *, count: Counter, max_tokens: int, overlap: int) -> list[str]:
    """Pack pieces greedily into windows. Each window emitted takes at least one new piece
    off the queue, so this ends."""
    out: list[str] = []
    queue = deque(pieces(text, max_tokens=max_tokens, count=count))
    current: list[Piece] = []
    while True:
        if queue:
            if not current or sum(p.tokens for p in current) + queue[0].tokens <= max_tokens:
                current.append(queue.popleft())
                continue
            if all(p.overlap for p in current):  # only repeated text: not worth a window
                current = []
                continue
        elif all(p.overlap for p in current):
            break
        current = _fit(current, queue, count=count, max_tokens=max_tokens)
        out.append(_text(current))
        budget = min(overlap, max_tokens - queue[0].tokens) if queue else 0
        tail = _overlap(current, budget, count)
        current = [tail] if tail else []
    return [text for text in out if text]


def _fit(
    window: list[Piece], queue: deque[Piece], *, count: Counter, max_tokens: int
) -> list[Piece]:
    """Pieces are counted one by one, and a real tokenizer may count their join a token or
    two higher: move trailing pieces back to `queue`, or drop the overlap, until it fits."""
    window = list(window)
    while count(_text(window)) > max_tokens:
        if len([p for p in window if not p.overlap]) > 1:
            queue.appendleft(window.pop())
        elif window[0].overlap:
            window = window[1:]
        else:
            break
    return window


def _text(window: list[Piece]) -> str:
    return "".join(piece.text for piece in window).strip("\n").rstrip()


def _overlap(window: list[Piece], budget: int, count: Counter) -> Piece | None:
    """The end of `window` to repeat at the start of the next: whole sentences if they fit
    in `budget`, else whole words; never code (a fence cut open is worse than no overlap)."""
    if budget <= 0 or not window or window[-1].code:
        return None
    start = len(window)
    while start > 0 and not window[start - 1].code:
        start -= 1
    tail = "".join(piece.text for piece in window[start:])
    body = tail.rstrip()
    if not body:
        return None
    trailing = tail[len(body):]
    best = ""
    for units in (split_at(body, SENTENCE), split_at(split_at(body, SENTENCE)[-1], WORD)):
        suffix = ""
        for unit in reversed(units):
            if count(unit + suffix) > budget:
                break
            suffix = unit + suffix
            best = suffix if len(suffix) > len(best) else best
        if best:
            break
    if not best.strip():
        return None
    text = best.lstrip() + trailing
    tokens = count(text)
    return Piece(text=text, tokens=tokens, overlap=True) if tokens <= budget else None
