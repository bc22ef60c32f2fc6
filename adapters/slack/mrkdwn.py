"""CommonMark answers as Slack mrkdwn, and long answers split to fit Slack messages.

Slack's mrkdwn is not Markdown: ``*bold*``, ``_italic_``, ``~strike~`` and ``<url|label>``;
no headings, tables or nested lists; only ``&``, ``<`` and ``>`` are escaped. The answer is
parsed with markdown-it and the syntax tree is written out again in Slack's terms.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from markdown_it import MarkdownIt
from markdown_it.tree import SyntaxTreeNode

_md = MarkdownIt("commonmark").enable("table").enable("strikethrough")

_BULLETS = ("•", "◦", "▪")
_INDENT = "    "
_RULE = "———"
_MARKERS = {"strong": "*", "em": "_", "s": "~"}
# Slack has no escape for "|" inside a link label: the first one ends the label.
_LABEL_BAR = "¦"
_FENCE = re.compile(r"[ \t]*(?P<marker>`{3,}|~{3,})")
_LEADING_BLANK_LINES = re.compile(r"\A(?:[ \t]*\n)+")


def to_mrkdwn(markdown: str) -> str:
    """`markdown` (CommonMark with tables and strikethrough) written as Slack mrkdwn."""
    return _blocks(SyntaxTreeNode(_md.parse(markdown)).children, depth=0).rstrip()


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _blocks(nodes: Iterable[SyntaxTreeNode], *, depth: int, separator: str = "\n\n") -> str:
    return separator.join(text for node in nodes if (text := _block(node, depth)))


def _block(node: SyntaxTreeNode, depth: int) -> str:
    match node.type:
        case "paragraph":
            return _inline(_inline_children(node))
        case "heading":
            # Slack bold cannot span lines, and "*" inside it would end it early.
            text = _inline(_inline_children(node), active=frozenset("*")).replace("\n", " ")
            return f"*{text}*" if text else ""
        case "bullet_list" | "ordered_list":
            return _list(node, depth)
        case "blockquote":
            quoted = _blocks(node.children, depth=depth).split("\n")
            return "\n".join(f"> {line}" if line else ">" for line in quoted)
        case "fence" | "code_block":
            return _code(node.content)
        case "table":
            return _code(_table(node))
        case "hr":
            return _RULE
        case "html_block":
            return _escape(node.content.rstrip("\n"))
        case _:
            return _blocks(node.children, depth=depth)


def _code(content: str) -> str:
    return "```\n" + _escape(content.rstrip("\n")) + "\n```"


def _inline_children(node: SyntaxTreeNode) -> list[SyntaxTreeNode]:
    return [grandchild for child in node.children for grandchild in child.children]


def _list(node: SyntaxTreeNode, depth: int) -> str:
    tight = not any(
        child.type == "paragraph" and not child.hidden
        for item in node.children
        for child in item.children
    )
    separator = "\n" if tight else "\n\n"
    start = int(node.attrs.get("start", 1))
    items = []
    for number, item in enumerate(node.children, start):
        marker = f"{number}." if node.type == "ordered_list" else _BULLETS[depth % len(_BULLETS)]
        body = _blocks(item.children, depth=depth + 1, separator=separator)
        first, *rest = f"{marker} {body}".split("\n")
        items.append(
            "\n".join([first.rstrip(), *(_INDENT + line if line else "" for line in rest)])
        )
    return separator.join(items)


def _inline(nodes: Iterable[SyntaxTreeNode], *, active: frozenset[str] = frozenset()) -> str:
    return "".join(_inline_node(node, active) for node in nodes)


def _inline_node(node: SyntaxTreeNode, active: frozenset[str]) -> str:
    match node.type:
        case "text" | "html_inline":
            return _escape(node.content)
        case "softbreak" | "hardbreak":
            return "\n"
        case "code_inline":
            return f"`{_escape(node.content)}`"
        case "strong" | "em" | "s":
            marker = _MARKERS[node.type]
            inner = _inline(node.children, active=active | {marker})
            # Slack does not nest a marker in itself: "*a *b* c*" would end at "a ".
            return inner if marker in active else f"{marker}{inner}{marker}"
        case "link":
            label = _inline(node.children, active=active)
            return _link(str(node.attrs["href"]), label, _plain(node.children))
        case "image":
            alt = _plain(node.children)
            return _link(str(node.attrs["src"]), _escape(alt), alt)
        case _:
            return _inline(node.children, active=active)


def _link(url: str, label: str, plain: str) -> str:
    if not plain or plain == url:
        return f"<{_escape(url)}>"
    label = label.replace("|", _LABEL_BAR).replace("\n", " ")
    return f"<{_escape(url)}|{label}>"


def _plain(nodes: Iterable[SyntaxTreeNode], *, urls: bool = False) -> str:
    return "".join(_plain_node(node, urls) for node in nodes)


def _plain_node(node: SyntaxTreeNode, urls: bool) -> str:
    match node.type:
        case "text" | "html_inline" | "code_inline":
            return node.content
        case "softbreak" | "hardbreak":
            return " "
        case "link" | "image" if urls:
            text = _plain(node.children)
            url = str(node.attrs.get("href") or node.attrs.get("src"))
            return f"{text} ({url})" if text and text != url else url
        case _:
            return _plain(node.children, urls=urls)


def _table(node: SyntaxTreeNode) -> str:
    """The table as padded columns of text, since Slack cannot show tables."""
    rows = [row.children for row in node.walk() if row.type == "tr"]
    texts = [[_plain(cell.children, urls=True) for cell in row] for row in rows]
    styles = [str(cell.attrs.get("style", "")) for cell in rows[0]]
    widths = [max(1, *(len(row[column]) for row in texts)) for column in range(len(styles))]
    lines = [" | ".join(map(_pad, row, widths, styles)).rstrip() for row in texts]
    lines.insert(1, "-+-".join("-" * width for width in widths))
    return "\n".join(lines)


def _pad(text: str, width: int, style: str) -> str:
    if style.endswith("right"):
        return text.rjust(width)
    if style.endswith("center"):
        return text.center(width)
    return text.ljust(width)


@dataclass(frozen=True, kw_only=True)
class _Block:
    """A paragraph, or a fenced code block with its fence lines, from a text being split."""

    separator: str  # what joined it to the block before: a blank line or a line break
    lines: tuple[str, ...]
    code: bool


def split_message(text: str, limit: int = 3900) -> list[str]:
    """`text` in chunks of at most `limit` characters, cut at paragraphs, then lines, then words.

    A code block is cut only if it cannot fit in one chunk; each part is then fenced again.
    """
    if limit < 1:
        raise ValueError(f"limit must be positive, not {limit}")
    atoms = (atom for block in _split_blocks(text) for atom in _block_atoms(block, limit))
    chunks = (_LEADING_BLANK_LINES.sub("", chunk).rstrip() for chunk in _pack(atoms, limit))
    return [chunk for chunk in chunks if chunk]


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
    # "```code```" on one line is Slack's inline code block, not an opening fence.
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


def _block_atoms(block: _Block, limit: int) -> Iterator[tuple[str, str]]:
    """(separator, text) pieces of at most `limit` characters that together make `block`."""
    text = "\n".join(block.lines)
    if len(text) <= limit:
        yield block.separator, text
        return
    opening, closing = block.lines[0], block.lines[-1]
    room = limit - len(opening) - len(closing) - 2
    if not block.code or room < 1:
        atoms = _line_atoms(block.lines, limit)
    else:
        parts = _pack(_line_atoms(block.lines[1:-1], room, words=False), room)
        atoms = (("\n", f"{opening}\n{part}\n{closing}") for part in parts)
    first = next(atoms)
    yield block.separator, first[1]
    yield from atoms


def _line_atoms(
    lines: Iterable[str], limit: int, *, words: bool = True
) -> Iterator[tuple[str, str]]:
    for line in lines:
        if len(line) <= limit:
            yield "\n", line
            continue
        for index, word in enumerate(line.split(" ") if words else [line]):
            for cut in range(0, max(len(word), 1), limit):
                yield ("" if cut else " " if index else "\n"), word[cut : cut + limit]


def _pack(atoms: Iterable[tuple[str, str]], limit: int) -> Iterator[str]:
    """Atoms joined greedily into chunks of at most `limit` characters."""
    chunk: str | None = None
    for separator, atom in atoms:
        if chunk is not None and len(chunk) + len(separator) + len(atom) <= limit:
            chunk += separator + atom
            continue
        if chunk is not None:
            yield chunk
        chunk = atom
    if chunk is not None:
        yield chunk
