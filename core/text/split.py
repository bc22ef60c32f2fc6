"""Long answers split into messages a chat platform accepts.

The splitter owns the cutting rules every adapter wants: paragraphs first, then lines, then
words, then anywhere but inside a grapheme cluster; a code fence cut in two is closed and
opened again. The adapter owns the numbers: its limit and how its platform measures text
(`len` for code points, `utf16_len` for UTF-16 code units).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

Measure = Callable[[str], int]

_FENCE = re.compile(r"[ \t]*(?P<marker>`{3,}|~{3,})")
_LEADING_BLANK_LINES = re.compile(r"\A(?:[ \t]*\n)+")
_ZWJ = "\u200d"
# The widest character under every measure offered here (and UTF-8): a limit below its
# length could not hold it, and a part would have to break it.
_WIDEST = "\U0010ffff"


def utf16_len(text: str) -> int:
    """Length in UTF-16 code units, so a character outside the BMP (most emoji) is two."""
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


@dataclass(frozen=True, kw_only=True)
class _Block:
    """A paragraph, or a fenced code block with its fence lines, from a text being split."""

    separator: str  # what joined it to the block before: a blank line or a line break
    lines: tuple[str, ...]
    code: bool


def split_message(text: str, limit: int, *, measure: Measure = len) -> list[str]:
    """`text` in parts of at most `limit` by `measure`, cut at paragraphs, then lines, then
    words, then anywhere but inside a grapheme cluster (a character with its accents,
    joiners and variation selectors) unless the cluster alone is over the limit.

    A code block is cut only if it cannot fit in one part; each piece is then closed and
    opened again with the same fence and info string. Parts have no blank lines around
    them, and blank parts are dropped: empty text gives no parts.

    `measure` must add up (the measure of a joined text is the sum of its pieces'). A
    `limit` that cannot hold one character of any kind is refused with ValueError.
    """
    least = measure(_WIDEST)
    if limit < least:
        raise ValueError(f"limit must be at least {least} (one character), not {limit}")
    atoms = (
        atom for block in _split_blocks(text) for atom in _block_atoms(block, limit, measure)
    )
    parts = (_LEADING_BLANK_LINES.sub("", part).rstrip() for part in _pack(atoms, limit, measure))
    return [part for part in parts if part]


def cut(text: str, limit: int, *, measure: Measure = len) -> Iterator[str]:
    """`text` in pieces of at most `limit` by `measure`, each made of whole characters
    (never half of a surrogate pair) and, where they fit, whole grapheme clusters.

    Empty text gives one empty piece. A single character over the limit is still a piece
    of its own: `split_message` refuses such limits before it gets here.
    """
    piece, size = "", 0
    for cluster in _clusters(text):
        width = measure(cluster)
        if width > limit:  # a cluster longer than a piece: cut between its characters
            if piece:
                yield piece
            yield from _cut_characters(cluster, limit, measure)
            piece, size = "", 0
            continue
        if piece and size + width > limit:
            yield piece
            piece, size = "", 0
        piece, size = piece + cluster, size + width
    if piece or not text:
        yield piece


def _split_blocks(text: str) -> Iterator[_Block]:
    lines = iter(text.split("\n"))
    separator, paragraph = "\n", list[str]()
    for line in lines:
        fence = _opening_fence(line)
        if paragraph and (fence or not line.strip()):
            yield _Block(separator=separator, lines=tuple(paragraph), code=False)
            separator, paragraph = "\n", []
        if fence:
            yield _Block(separator=separator, lines=(line, *_fenced(lines, fence)), code=True)
            separator = "\n"
        elif line.strip():
            paragraph.append(line)
        else:
            separator = "\n\n"
    if paragraph:
        yield _Block(separator=separator, lines=tuple(paragraph), code=False)


def _opening_fence(line: str) -> str | None:
    match = _FENCE.match(line)
    # A backtick fence's info string cannot hold a backtick (CommonMark), and "```code```"
    # on one line is inline code in Slack too: neither opens a block.
    if not match or (match["marker"][0] == "`" and "`" in line[match.end() :]):
        return None
    return match["marker"]


def _fenced(lines: Iterator[str], marker: str) -> Iterator[str]:
    """The rest of a code block, up to and including its closing fence (added if missing)."""
    closing = re.compile(rf"[ \t]*{re.escape(marker[0])}{{{len(marker)},}}[ \t]*")
    for line in lines:
        yield line
        if closing.fullmatch(line):
            return
    yield marker


def _block_atoms(block: _Block, limit: int, measure: Measure) -> Iterator[tuple[str, str]]:
    """(separator, text) pieces of at most `limit` that together make `block`."""
    text = "\n".join(block.lines)
    if measure(text) <= limit:
        yield block.separator, text
        return
    opening, closing = block.lines[0], block.lines[-1]
    room = limit - measure(opening) - measure(closing) - 2 * measure("\n")
    # Fences are kept only if the room between them holds any character: an astral one
    # in a room of one UTF-16 unit would push the part over the limit.
    if not block.code or room < measure(_WIDEST):
        atoms = _line_atoms(block.lines, limit, measure)
    else:
        pieces = _pack(_line_atoms(block.lines[1:-1], room, measure, words=False), room, measure)
        atoms = (("\n", f"{opening}\n{piece}\n{closing}") for piece in pieces)
    first = next(atoms)
    yield block.separator, first[1]
    yield from atoms


def _line_atoms(
    lines: Iterable[str], limit: int, measure: Measure, *, words: bool = True
) -> Iterator[tuple[str, str]]:
    for line in lines:
        if measure(line) <= limit:
            yield "\n", line
            continue
        for index, word in enumerate(line.split(" ") if words else [line]):
            for number, piece in enumerate(cut(word, limit, measure=measure)):
                yield ("" if number else " " if index else "\n"), piece


def _cut_characters(text: str, limit: int, measure: Measure) -> Iterator[str]:
    piece, size = "", 0
    for char in text:
        width = measure(char)
        if piece and size + width > limit:
            yield piece
            piece, size = "", 0
        piece, size = piece + char, size + width
    if piece:
        yield piece


def _clusters(text: str) -> Iterator[str]:
    """Approximate grapheme clusters: a character with the marks, joiners, variation
    selectors and skin tones that belong to it, and flags as their two regional indicators,
    so a cut cannot orphan an accent or break an emoji in two."""
    cluster = ""
    for char in text:
        if cluster and (_extends(char) or cluster.endswith(_ZWJ) or _pairs(cluster, char)):
            cluster += char
            continue
        if cluster:
            yield cluster
        cluster = char
    if cluster:
        yield cluster


def _extends(char: str) -> bool:
    code = ord(char)
    return (
        unicodedata.category(char) in ("Mn", "Mc", "Me")
        or char == _ZWJ
        or 0xFE00 <= code <= 0xFE0F  # variation selectors
        or 0x1F3FB <= code <= 0x1F3FF  # skin tones
        or 0xE0020 <= code <= 0xE007F  # emoji tag sequences (subdivision flags)
    )


def _pairs(cluster: str, char: str) -> bool:
    """Whether `char` completes a flag: regional indicators go two by two."""
    return len(cluster) == 1 and _regional(cluster) and _regional(char)


def _regional(char: str) -> bool:
    return 0x1F1E6 <= ord(char) <= 0x1F1FF


def _pack(atoms: Iterable[tuple[str, str]], limit: int, measure: Measure) -> Iterator[str]:
    """Atoms joined greedily into parts of at most `limit`."""
    parts: list[str] = []
    size = 0
    for separator, atom in atoms:
        width = measure(separator) + measure(atom)
        if parts and size + width <= limit:
            parts += [separator, atom]
            size += width
            continue
        if parts:
            yield "".join(parts)
        parts, size = [atom], measure(atom)
    if parts:
        yield "".join(parts)
