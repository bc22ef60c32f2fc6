"""CommonMark answers as Teams text messages: the Markdown Teams shows, split to fit, and
the entity that turns `[n]` markers into citations and adds the AI label.

Teams renders a subset of Markdown in a text message (`textFormat: "markdown"`): bold,
italic, strikethrough, code, lists, blockquotes and links, but no headings, tables,
horizontal rules or images ("Format your bot messages", learn.microsoft.com/microsoftteams/
platform/bots/how-to/format-your-bot-messages). The answer is parsed with markdown-it and
the syntax tree is written out again as Markdown that stays inside that subset.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

from markdown_it import MarkdownIt
from markdown_it.tree import SyntaxTreeNode

from core.messages import Citation
from core.text.split import cut, utf16_len
from core.text.split import split_message as split

_md = MarkdownIt("commonmark").enable("table").enable("strikethrough")

# ~28 KB of UTF-16 per message (2 bytes per code unit): what every Teams client takes.
MESSAGE_LIMIT = 14_000
MAX_CITATIONS = 20  # Teams answers 400 to a message with more
MAX_NAME = 80  # citation.appearance.name, "Maximum characters: 80"
MAX_ABSTRACT = 160  # citation.appearance.abstract, "Maximum characters: 160"

_MARKERS = {"strong": "**", "em": "*", "s": "~~"}
_CITATION = re.compile(r"\[(\d+)\]")
# Characters that would start Markdown syntax inside a line. A citation marker comes first
# so that it is matched whole and stays as it is: Teams finds `[n]` in the text.
_INLINE_SPECIAL = re.compile(r"\[\d+\]\(?|[\\`*_~\[\]]|<(?=[A-Za-z/!?])|&(?=#?[0-9A-Za-z]+;)")
# What would start a block at the beginning of a line; the empty group marks where the
# backslash goes.
_BLOCK_STARTS = tuple(
    re.compile(pattern)
    for pattern in (
        r"()[#>]",  # heading, blockquote
        r"()[-+](?:\s|$)",  # bullet
        r"()(?:-+|=+)\s*$",  # setext underline or rule
        r"\d{1,9}()[.)](?:\s|$)",  # ordered item
        r"\[\d+\]():",  # link reference definition, which would swallow the line
    )
)
_ASCII_PUNCTUATION = frozenset("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")


# ----- CommonMark to Teams Markdown -----


def to_teams_markdown(markdown: str) -> str:
    """`markdown` (CommonMark with tables and strikethrough) as Markdown Teams shows.

    Headings become a bold line and tables a bullet per row; rules are dropped and images
    become links. Raw HTML is shown as text, never passed on. Text is escaped only where
    it would otherwise start Markdown syntax, and `[n]` citation markers stay as written.
    """
    return _blocks(SyntaxTreeNode(_md.parse(markdown)).children).rstrip()


def _blocks(nodes: Iterable[SyntaxTreeNode], *, separator: str = "\n\n") -> str:
    return separator.join(text for node in nodes if (text := _block(node)))


def _block(node: SyntaxTreeNode) -> str:
    match node.type:
        case "paragraph":
            return _inline(_inline_children(node), line_start=True)
        case "heading":
            return _heading(node)
        case "bullet_list" | "ordered_list":
            return _list(node)
        case "blockquote":
            quoted = _blocks(node.children).split("\n")
            return "\n".join(f"> {line}" if line else ">" for line in quoted)
        case "fence":
            return _code(node.content, node.info.strip())
        case "code_block":
            return _code(node.content, "")
        case "table":
            return _table(node)
        case "hr":
            # Teams shows no rule in a text message; the blank line keeps the break.
            return ""
        case "html_block":
            return _escape(node.content.rstrip("\n"), line_start=True)
        case _:
            return _blocks(node.children)


def _inline_children(node: SyntaxTreeNode) -> list[SyntaxTreeNode]:
    return [grandchild for child in node.children for grandchild in child.children]


def _heading(node: SyntaxTreeNode) -> str:
    """A bold line: Teams shows `#` headings as plain text with the hashes."""
    text = _inline(_inline_children(node), active=frozenset({"strong"}), line_start=True)
    text = " ".join(line.strip() for line in text.split("\n"))
    return f"**{text}**" if text else ""


def _list(node: SyntaxTreeNode) -> str:
    tight = not any(
        child.type == "paragraph" and not child.hidden
        for item in node.children
        for child in item.children
    )
    separator = "\n" if tight else "\n\n"
    start = int(node.attrs.get("start", 1))
    items = []
    for number, item in enumerate(node.children, start):
        marker = f"{number}." if node.type == "ordered_list" else "-"
        # Continuation lines are indented to the item's content column, as CommonMark
        # needs for them to stay inside the item.
        indent = " " * (len(marker) + 1)
        body = _blocks(item.children, separator=separator)
        first, *rest = (f"{marker} {body}" if body else marker).split("\n")
        items.append("\n".join([first, *(indent + line if line else "" for line in rest)]))
    return separator.join(items)


def _code(content: str, info: str) -> str:
    """A backtick fence long enough for the content, which is kept byte for byte."""
    longest = max((len(run) for run in re.findall(r"`+", content)), default=0)
    fence = "`" * max(3, longest + 1)
    if "`" in info:  # only a tilde fence can carry it; Teams is surest with backticks
        info = ""
    if content and not content.endswith("\n"):
        content += "\n"
    return f"{fence}{info}\n{content}{fence}"


def _table(node: SyntaxTreeNode) -> str:
    """A bullet per row, `**Header**: value` for each cell.

    Text messages cannot show tables. A padded code block would keep the columns but lose
    links and formatting, and wraps badly on phones; a row as a line of labelled values
    keeps both, reads well at any width, and is still plain text where lists don't render.
    """
    rows = [row.children for row in node.walk() if row.type == "tr"]
    header = [_cell(cell, heading=True) for cell in rows[0]]
    if len(rows) == 1:
        return "- " + "; ".join(f"**{label}**" for label in header if label)
    lines = []
    for row in rows[1:]:
        values = [_cell(cell) for cell in row]
        pairs = [
            f"**{label}**: {value}" if label else value
            for label, value in zip(header, values, strict=False)
            if value
        ]
        if pairs:
            lines.append("- " + "; ".join(pairs))
    return "\n".join(lines)


def _cell(cell: SyntaxTreeNode, *, heading: bool = False) -> str:
    active = frozenset({"strong"}) if heading else frozenset()
    return _inline(_inline_children(cell), active=active, line_start=True).strip()


def _inline(
    nodes: Iterable[SyntaxTreeNode],
    *,
    active: frozenset[str] = frozenset(),
    line_start: bool = False,
) -> str:
    parts = []
    for node in nodes:
        parts.append(_inline_node(node, active, line_start))
        line_start = node.type in ("softbreak", "hardbreak")
    return "".join(parts)


def _inline_node(node: SyntaxTreeNode, active: frozenset[str], line_start: bool) -> str:
    match node.type:
        case "text" | "html_inline":
            return _escape(node.content, line_start=line_start)
        case "softbreak":
            return "\n"
        case "hardbreak":
            return "  \n"
        case "code_inline":
            return _code_span(node.content)
        case "strong" | "em" | "s":
            inner = _inline(node.children, active=active | {node.type})
            # The same marker inside itself would end it early (and shows nothing more).
            if node.type in active or not inner:
                return inner
            marker = _MARKERS[node.type]
            return f"{marker}{inner}{marker}"
        case "link":
            label = _inline(node.children, active=active)
            return _link(label, str(node.attrs["href"]))
        case "image":
            # Teams shows no image from Markdown in a text message; the link still works.
            alt = _escape(_plain(node.children))
            return _link(alt, str(node.attrs["src"]))
        case _:
            return _inline(node.children, active=active, line_start=line_start)


def _code_span(content: str) -> str:
    runs = {len(run) for run in re.findall(r"`+", content)}
    ticks = "`" * next(n for n in range(1, len(runs) + 2) if n not in runs)
    # CommonMark drops one space at each end when both ends have one.
    padded = content[:1] in ("`", " ") or content[-1:] in ("`", " ")
    pad = " " if padded and content.strip() else ""
    return f"{ticks}{pad}{content}{pad}{ticks}"


def _link(label: str, url: str) -> str:
    destination = url.replace("(", "%28").replace(")", "%29").replace(" ", "%20")
    return f"[{label or _escape(url)}]({destination})"


def _plain(nodes: Iterable[SyntaxTreeNode]) -> str:
    leaves = ("text", "code_inline", "html_inline")
    return "".join(node.content if node.type in leaves else _plain(node.children) for node in nodes)


def _escape(text: str, *, line_start: bool = False) -> str:
    """`text` as Markdown that shows exactly `text`, with as few backslashes as possible.

    Backslash escapes are standard CommonMark; `<` before a tag name becomes `&lt;` so no
    renderer, however lax, can take it for HTML.
    """
    lines = text.split("\n")
    escaped = [
        _escape_line(line, line_start=line_start or index > 0) for index, line in enumerate(lines)
    ]
    return "\n".join(escaped)


def _escape_line(line: str, *, line_start: bool) -> str:
    def replace(match: re.Match[str]) -> str:
        found, at = match.group(), match.start()
        if found.startswith("[") and len(found) > 1:
            # A citation marker; a "(" after it would make it a link.
            return found[:-1] + "\\(" if found.endswith("(") else found
        if found == "\\":
            following = line[at + 1 : at + 2]
            return "\\\\" if not following or following in _ASCII_PUNCTUATION else "\\"
        if found == "_" and line[at - 1 : at].isalnum() and line[at + 1 : at + 2].isalnum():
            return "_"  # inside a word an underscore cannot open or close emphasis
        if found == "<":
            return "&lt;"
        if found == "&":
            return "&amp;"
        return "\\" + found

    escaped = _INLINE_SPECIAL.sub(replace, line)
    return _escape_block_start(escaped) if line_start else escaped


def _escape_block_start(line: str) -> str:
    for pattern in _BLOCK_STARTS:
        if match := pattern.match(line):
            at = match.start(1)
            return f"{line[:at]}\\{line[at:]}"
    return line


# ----- splitting -----


def split_message(text: str, limit: int = MESSAGE_LIMIT) -> list[str]:
    """`text` in parts of at most `limit` UTF-16 code units, cut at paragraphs, then lines,
    then words, then anywhere but inside a character (or a character and its accents,
    joiners and variation selectors); a code block cut in two is closed and opened again
    with the same fence and info string (`core.text.split`).

    Teams measures a message in UTF-16 (learn.microsoft.com/microsoftteams/platform/bots/
    how-to/format-your-bot-messages: 100 KB for the whole activity "encoded as UTF-16",
    80 KB recommended). The default leaves room for the citations entity and the rest of
    the activity.
    """
    return [_not_indented_code(part) for part in split(text, limit, measure=utf16_len)]


def _not_indented_code(part: str) -> str:
    """`part`, not indented into a code block by where it was cut.

    A part that starts inside a nested list would start with four or more spaces, which
    CommonMark reads as an indented code block; the leading run of lines is dedented.
    Slack's mrkdwn has no indented code, so this is Teams' alone.
    """
    lines = part.split("\n")
    indent = len(lines[0]) - len(lines[0].lstrip(" "))
    if indent < 4:
        return part
    for index, line in enumerate(lines):
        if line.strip() and len(line) - len(line.lstrip(" ")) < indent:
            break
        lines[index] = line[indent:]
    return "\n".join(lines)


# ----- AI message: citations, AI label, feedback -----


def citation_entity(citations: Sequence[Citation], text: str) -> dict[str, Any]:
    """The `https://schema.org/Message` entity of an AI answer: the AI label, and a claim
    for each citation whose `[n]` marker is in `text` (outside code).

    Teams shows `[n]` as a citation when a claim has `position` n; nothing requires the
    positions to be 1..k, so the answer's own numbers are kept (as Microsoft's SDKs do),
    and a message split in parts cites with the same numbers in each. Teams answers 400 to
    more than 20 citations, and a position sent twice broke Microsoft's own SDK
    (microsoft/teams-sdk#2462), so each is sent once and only the 20 lowest. The entity
    is always returned: it carries the AI label.
    """
    by_index: dict[int, Citation] = {}
    for citation in citations:
        by_index.setdefault(citation.index, citation)
    used = sorted(set(cited_positions(text)) & by_index.keys())[:MAX_CITATIONS]
    entity: dict[str, Any] = {
        "type": "https://schema.org/Message",
        "@type": "Message",
        "@context": "https://schema.org",
        "@id": "",
        "additionalType": ["AIGeneratedContent"],
    }
    if used:
        entity["citation"] = [_claim(by_index[position]) for position in used]
    return entity


def cited_positions(text: str) -> list[int]:
    """The numbers of the `[n]` markers in Markdown `text`, in order of first appearance,
    leaving out code, where `a[1]` is an index and not a citation."""
    found = (
        int(number)
        for node in SyntaxTreeNode(_md.parse(text)).walk()
        if node.type == "text"
        for number in _CITATION.findall(node.content)
    )
    return [number for number in dict.fromkeys(found) if number > 0]


def _claim(citation: Citation) -> dict[str, Any]:
    name = (
        _clip(citation.title, MAX_NAME)
        or _clip(citation.url or "", MAX_NAME)
        or f"Source {citation.index}"
    )
    appearance: dict[str, Any] = {"@type": "DigitalDocument", "name": name}
    if citation.url and citation.url.startswith(("https://", "http://")):
        appearance["url"] = citation.url
    # The docs mark abstract optional, but the SDKs' types require it: never leave it out.
    appearance["abstract"] = _clip(citation.snippet or "", MAX_ABSTRACT) or name
    return {"@type": "Claim", "position": citation.index, "appearance": appearance}


def _clip(text: str, limit: int) -> str:
    """`text` on one line, and cut at a word with an ellipsis if longer than `limit` units."""
    text = " ".join(text.split())
    if utf16_len(text) <= limit:
        return text
    head = next(cut(text, limit - 1, measure=utf16_len))
    word_end = head.rfind(" ")
    if word_end >= limit // 2:
        head = head[:word_end]
    return head.rstrip(" ,;:.-") + "…"


def ai_message_fields(
    text: str, citations: Sequence[Citation], *, feedback: bool
) -> dict[str, Any]:
    """The fields of a message activity carrying an AI answer (one part of it): `text` as
    Markdown, the citations entity with the AI label, and the feedback buttons if asked.

    Feedback is `channelData.feedbackLoop = {"type": "default"}` (Teams' own form; the
    answer arrives as the invoke `message/submitAction`). The older boolean
    `feedbackLoopEnabled` is not set: Teams rejects an activity that sets both.
    """
    return {
        "type": "message",
        "text": text,
        "textFormat": "markdown",
        "entities": [citation_entity(citations, text)],
        "channelData": {"feedbackLoop": {"type": "default"}} if feedback else {},
    }
