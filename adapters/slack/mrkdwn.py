"""CommonMark answers as Slack mrkdwn, and long answers split to fit Slack messages.

Slack's mrkdwn is not Markdown: ``*bold*``, ``_italic_``, ``~strike~`` and ``<url|label>``;
no headings, tables or nested lists; only ``&``, ``<`` and ``>`` are escaped. The answer is
parsed with markdown-it and the syntax tree is written out again in Slack's terms.
"""

from __future__ import annotations

from collections.abc import Iterable

from markdown_it import MarkdownIt
from markdown_it.tree import SyntaxTreeNode

from core.text.split import split_message as split

_md = MarkdownIt("commonmark").enable("table").enable("strikethrough")

_BULLETS = ("•", "◦", "▪")
_INDENT = "    "
_RULE = "———"
_MARKERS = {"strong": "*", "em": "_", "s": "~"}
# Slack has no escape for "|" inside a link label: the first one ends the label.
_LABEL_BAR = "¦"


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


def split_message(text: str, limit: int = 3900) -> list[str]:
    """`text` in chunks of at most `limit` characters (code points), cut at paragraphs, then
    lines, then words, never between a character and its accents or joiners; a code block
    cut in two is fenced again (`core.text.split`)."""
    return split(text, limit)
