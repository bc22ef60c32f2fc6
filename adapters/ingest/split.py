"""Cutting section text into pieces no larger than a token window, at the best boundary
available: paragraph, then sentence, then line, then word (characters only for a single
"word" longer than the window). Code fences are one piece when they fit; a longer fence is
cut between lines and each part fenced again, so no passage holds half a fence.

Pieces are slices of the original text, separators attached to the piece before them, so
joining consecutive pieces gives back the original text exactly."""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

Counter = Callable[[str], int]

_FENCE_OPEN = re.compile(r" {0,3}(`{3,}|~{3,})")
SENTENCE = re.compile(r"[.!?…][\"'”’)\]]*\s+")
_LINE = re.compile(r"\n+")
WORD = re.compile(r"\s+")
_LEVELS = (SENTENCE, _LINE, WORD)


@dataclass(frozen=True, kw_only=True, slots=True)
class Piece:
    text: str
    tokens: int
    code: bool = False  # part of a fence: never split again, never repeated as overlap
    overlap: bool = False  # the end of the previous window, repeated


def pieces(text: str, *, max_tokens: int, count: Counter) -> list[Piece]:
    out: list[Piece] = []
    for block, code in blocks(text):
        tokens = count(block)
        if tokens <= max_tokens:
            out.append(Piece(text=block, tokens=tokens, code=code))
        elif code:
            out.extend(_split_fence(block, max_tokens=max_tokens, count=count))
        else:
            out.extend(
                Piece(text=part, tokens=part_tokens)
                for part, part_tokens in _split_prose(
                    block, _LEVELS, max_tokens=max_tokens, count=count, tokens=tokens
                )
            )
    return out


def blocks(text: str) -> list[tuple[str, bool]]:
    """Paragraphs and fenced code blocks as (slice, is_code); blank lines stay with the
    block before them."""
    out: list[tuple[str, bool]] = []
    current: list[str] = []
    code = False
    fence: tuple[str, int] | None = None  # marker character and length of an open fence

    def close() -> None:
        if current:
            out.append(("".join(current), code))
            current.clear()

    for line in text.splitlines(keepends=True):
        if fence is not None:
            current.append(line)
            stripped = line.strip()
            if len(stripped) >= fence[1] and stripped == fence[0] * len(stripped):
                close()
                fence = None
        elif opening := _FENCE_OPEN.match(line):
            close()
            marker = opening.group(1)
            fence, code = (marker[0], len(marker)), True
            current.append(line)
        elif not line.strip():
            if current:
                current.append(line)
                close()
            elif out:
                out[-1] = (out[-1][0] + line, out[-1][1])
            else:
                current.append(line)
        else:
            if not current:
                code = False
            current.append(line)
    close()
    return out


def split_at(text: str, pattern: re.Pattern[str]) -> list[str]:
    """`text` cut after each match of `pattern` (the separator ends the piece before)."""
    out, start = [], 0
    for match in pattern.finditer(text):
        if start < match.end() < len(text):
            out.append(text[start:match.end()])
            start = match.end()
    out.append(text[start:])
    return [part for part in out if part]


def _split_prose(
    text: str, levels: tuple[re.Pattern[str], ...], *, max_tokens: int, count: Counter,
    tokens: int | None = None,
) -> list[tuple[str, int]]:
    """(part, its token count) pairs: each part is counted once, and `tokens` is `text`'s
    count when the caller has it (counting is most of what chunking costs)."""
    tokens = count(text) if tokens is None else tokens
    if tokens <= max_tokens:
        return [(text, tokens)]
    if not levels:
        return _split_chars(text, max_tokens=max_tokens, count=count)
    parts = split_at(text, levels[0])
    if len(parts) == 1:
        return _split_prose(text, levels[1:], max_tokens=max_tokens, count=count, tokens=tokens)
    return [
        piece
        for part in parts
        for piece in _split_prose(part, levels[1:], max_tokens=max_tokens, count=count)
    ]


def _split_chars(text: str, *, max_tokens: int, count: Counter) -> list[tuple[str, int]]:
    out: list[tuple[str, int]] = []
    while text:
        size = len(text)
        while size > 1 and (tokens := count(text[:size])) > max_tokens:
            size = max(1, size * 3 // 4)
        if size == 1:
            tokens = count(text[:1])
        out.append((text[:size], tokens))
        text = text[size:]
    return out


def _split_fence(block: str, *, max_tokens: int, count: Counter) -> list[Piece]:
    lines = block.rstrip("\n").split("\n")
    trailing = block[len(block.rstrip("\n")):]
    opening = lines[0] + "\n"
    marker = _FENCE_OPEN.match(lines[0])
    assert marker is not None
    last = lines[-1].strip()
    closed = len(lines) > 1 and len(last) >= len(marker.group(1)) and (
        last == marker.group(1)[0] * len(last)
    )
    inner = lines[1:-1] if closed else lines[1:]
    closing = (last if closed else marker.group(1)) + "\n"
    budget = max_tokens - count(opening) - count(closing)
    if budget <= 0:  # a window too small to fence anything: plain text is the best left
        parts = _split_prose(block, _LEVELS, max_tokens=max_tokens, count=count)
        return [Piece(text=part, tokens=tokens, code=True) for part, tokens in parts]
    lines_left = deque(
        part if part.endswith("\n") else part + "\n"
        for line in inner
        for part, _ in _split_prose(line + "\n", (WORD,), max_tokens=budget, count=count)
    )
    out: list[Piece] = []
    while lines_left:
        group = [lines_left.popleft()]
        used = count(group[0])
        while lines_left and used + (tokens := count(lines_left[0])) <= budget:
            group.append(lines_left.popleft())
            used += tokens
        # Counted line by line; a real tokenizer may count the whole a little higher.
        while len(group) > 1 and count(opening + "".join(group) + closing) > max_tokens:
            lines_left.appendleft(group.pop())
        text = opening + "".join(group) + closing + ("" if lines_left else trailing)
        out.append(Piece(text=text, tokens=count(text), code=True))
    return out
