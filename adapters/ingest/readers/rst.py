"""reStructuredText, read line by line rather than through docutils: real sources are
mostly Sphinx sources, whose directives and roles (`.. currentmodule::`, :func:`x`) plain
docutils does not know and reports as errors, and what a knowledge base needs is the
sections' words, not a rendering.

Headings (underlined, or over- and underlined) cut sections; their levels follow the order
in which each adornment style first appears, as in docutils. Directives lose their line
and options: code directives and `::` literal blocks become fenced code (kept whole by the
chunker), admonitions keep their words, and directives with nothing to read (`toctree`,
`image`, `index`, comments, link targets) are dropped with their content. Roles keep their
text: :func:`~pkg.mod.run` → `run`."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from adapters.ingest.document import Parsed, Section
from adapters.ingest.readers.plain import decode

_ADORNMENT = re.compile(r"^(?!::\s*$)([!-/:-@\[-`{-~])\1+\s*$")  # "::" opens a literal
_DIRECTIVE = re.compile(r"^(\s*)\.\.\s+([\w:.+-]+)::(?:\s+(.*))?$")
_EXPLICIT = re.compile(r"^(\s*)\.\.(?:\s|$)")  # a comment, target, footnote or substitution
_OPTION = re.compile(r"^\s*:[\w][\w .-]*:(\s|$)")
# Sphinx's file-wide metadata, at the top of a page: not the page's words.
_METADATA = re.compile(r"^:(?:orphan|nocomments|nosearch|tocdepth|hide-toc|og:[\w:]+):")

_CODE = {"code", "code-block", "sourcecode", "doctest", "testcode", "testoutput",
         "ipython", "jupyter-execute", "parsed-literal"}
# A figure keeps its caption and a csv-table its rows (their content); these have none worth
# reading, or none at all.
_DROPPED = {"toctree", "image", "include", "literalinclude", "raw", "index",
            "highlight", "currentmodule", "module", "py:module", "py:currentmodule",
            "sectionauthor", "moduleauthor", "codeauthor", "contents", "autosummary",
            "automodule", "autoclass", "autofunction", "automethod", "autodata",
            "autoexception", "autoattribute", "graphviz", "tabularcolumns",
            "meta", "default-role", "default-domain", "role", "sectnum", "header", "footer",
            "testsetup", "testcleanup", "plot", "math", "only-html-build"}
_ADMONITIONS = {"note": "Note", "warning": "Warning", "tip": "Tip", "hint": "Hint",
                "important": "Important", "caution": "Caution", "attention": "Attention",
                "danger": "Danger", "error": "Error", "seealso": "See also",
                "todo": "To do"}
_VERSIONS = {"versionadded": "Added in version", "versionchanged": "Changed in version",
             "deprecated": "Deprecated since version", "versionremoved": "Removed in version"}
# Roles whose text is a name in code: kept as `code`; any other role keeps its plain text.
_CODE_ROLES = {"func", "meth", "class", "mod", "attr", "data", "exc", "obj", "const",
               "envvar", "option", "program", "command", "file", "samp", "code", "kbd",
               "makevar", "mailheader", "type", "macro", "member", "var", "enum", "struct",
               "literal", "keyword", "token"}
_ROLE = re.compile(r":(?:[\w.+-]+:)*?([\w+-]+):`([^`]+)`")
_LINK = re.compile(r"`([^`<]+?)\s*<[^`>]+>`__?")
_REFERENCE = re.compile(r"(?<!`)`([^`]+)`__?")
_LITERAL = re.compile(r"``(.+?)``", re.DOTALL)
_CODE_SPAN = re.compile(r"(`[^`]*`)")
# `name_`, not `__init__`: a reference name starts with a letter or digit.
_NAMED_REF = re.compile(r"(?<![\w`])([A-Za-z0-9][\w.-]*?)__?(?=[\s,;:)!?]|\.(?:\s|$)|$)")


@dataclass(kw_only=True)
class _Out:
    """Sections as they are built: (heading path, lines)."""

    sections: list[tuple[tuple[str, ...], list[str]]] = field(
        default_factory=lambda: [((), [])]
    )
    styles: list[tuple[str, bool]] = field(default_factory=list)
    path: list[tuple[int, str]] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)

    def text(self, line: str) -> None:
        """Prose, whose roles and links are resolved a paragraph at a time: a link's text
        and its target are often on two lines."""
        self.pending.append(line)

    def flush(self) -> None:
        if self.pending:
            self.sections[-1][1].extend(_inline("\n".join(self.pending)).split("\n"))
            self.pending = []

    def heading(self, style: tuple[str, bool], title: str) -> None:
        self.flush()
        if style not in self.styles:
            self.styles.append(style)
        level = self.styles.index(style)
        self.path = [*(entry for entry in self.path if entry[0] < level), (level, title)]
        self.sections.append((tuple(t for _, t in self.path), []))

    def extend(self, lines: list[str]) -> None:
        self.flush()
        self.sections[-1][1].extend(lines)


def read(data: bytes) -> Parsed:
    lines = [line.rstrip().expandtabs(8) for line in decode(data).split("\n")]
    out = _Out()
    _convert(lines, out, headings=True)
    sections = tuple(
        Section(headings=headings, text=_tidy(body)) for headings, body in out.sections
    )
    title = next((s.headings[0] for s in sections if s.headings), None)
    return Parsed(title=title, sections=sections)


def _convert(lines: list[str], out: _Out, *, headings: bool) -> None:
    i = 0
    while i < len(lines):
        line = lines[i]
        if headings and (found := _heading(lines, i)):
            style, title, used = found
            out.heading(style, title)
            i += used
        elif directive := _DIRECTIVE.match(line):
            indent, name, argument = len(directive[1]), directive[2].lower(), directive[3]
            body, i = _block(lines, i + 1, indent)
            _directive(name, (argument or "").strip(), body, out)
        elif headings and _METADATA.match(line):
            i += 1
        elif explicit := _EXPLICIT.match(line):
            _, i = _block(lines, i + 1, len(explicit[1]))
        elif line.endswith("::") and not _ADORNMENT.match(line):
            indent = _indent(line)
            # "Example::" reads "Example:"; "Example ::" and a lone "::" show nothing.
            text = line[:-2] if line[:-2].endswith(" ") or not line[:-2].strip() else line[:-1]
            if text.strip():
                out.text(text.rstrip())
            code, i = _block(lines, i + 1, indent)
            if code:
                out.extend(["", *_fence("", code), ""])
        else:
            out.text(line)
            i += 1
    out.flush()


def _heading(lines: list[str], i: int) -> tuple[tuple[str, bool], str, int] | None:
    """An overlined title (3 lines) or an underlined one (2 lines) starting at line i."""
    line = lines[i]
    nxt = lines[i + 1] if i + 1 < len(lines) else ""
    if (over := _ADORNMENT.match(line)) and i + 2 < len(lines) and nxt.strip():
        under = _ADORNMENT.match(lines[i + 2])
        if under and under[1] == over[1] and not _ADORNMENT.match(nxt):
            return (over[1], True), _inline_plain(nxt.strip()), 3
    if (
        line.strip()
        and not line[0].isspace()
        and not _ADORNMENT.match(line)
        and (under := _ADORNMENT.match(nxt))
        and len(nxt.strip()) >= min(len(line.strip()), 3)
        and (i == 0 or not lines[i - 1].strip())
    ):
        return (under[1], False), _inline_plain(line.strip()), 2
    return None


def _block(lines: list[str], i: int, indent: int) -> tuple[list[str], int]:
    """The lines indented deeper than `indent` from line i (blank lines inside kept),
    dedented, and where the block ends."""
    while i < len(lines) and not lines[i].strip() and _continues(lines, i, indent):
        i += 1  # blank lines before the block are not part of it
    start = i
    while i < len(lines) and (not lines[i].strip() or _indent(lines[i]) > indent):
        i += 1
    end = i
    while end > start and not lines[end - 1].strip():
        end -= 1  # trailing blank lines belong to what follows
    block = lines[start:end]
    margin = min((_indent(line) for line in block if line.strip()), default=0)
    return [line[margin:] for line in block], end


def _continues(lines: list[str], i: int, indent: int) -> bool:
    """Whether a deeper-indented line follows the blank lines from line i."""
    while i < len(lines) and not lines[i].strip():
        i += 1
    return i < len(lines) and _indent(lines[i]) > indent


def _directive(name: str, argument: str, body: list[str], out: _Out) -> None:
    options = 0
    while options < len(body) and _OPTION.match(body[options]):
        options += 1
    content = body[options:]
    while content and not content[0].strip():
        content = content[1:]
    short = name.rsplit(":", 1)[-1]
    if name in _DROPPED or short in _DROPPED or name.startswith("auto"):
        return
    if short in _CODE:
        language = "" if short in ("doctest", "parsed-literal") else argument.split(" ")[0]
        if short == "doctest":
            language = "pycon"
        if content:
            out.extend(["", *_fence(language, content), ""])
        return
    lead: list[str] = []
    # An admonition's or a version note's first words: raw, so a role or link that runs
    # on into the content's first lines is resolved with them.
    prose: list[str] = []
    if short in _ADMONITIONS:
        prose = [f"**{_ADMONITIONS[short]}:** {argument}".rstrip()]
    elif short in _VERSIONS:
        version, _, rest = argument.partition(" ")
        prose = [f"{_VERSIONS[short]} {version}" + (f": {rest}" if rest else ".")]
    elif short == "admonition" or short in ("topic", "sidebar", "rubric"):
        lead = [f"**{_inline(argument)}**"] if argument else []
    elif ":" in name or short in ("function", "class", "method", "attribute", "data",
                                  "exception", "decorator", "describe", "object",
                                  "option", "envvar", "classmethod", "staticmethod",
                                  "property", "type", "macro", "member", "var"):
        lead = [f"`{argument}`"] if argument else []  # an API signature: searched by name
    inner = _Out()
    _convert([*prose, *content], inner, headings=False)
    out.extend(["", *lead, *(line for _, lines in inner.sections for line in lines), ""])


def _fence(language: str, code: list[str]) -> list[str]:
    ticks = "````" if any(line.lstrip().startswith("```") for line in code) else "```"
    return [ticks + language, *code, ticks]


def _inline(text: str) -> str:
    text = _ROLE.sub(_role, text)
    text = _LINK.sub(r"\1", text)
    text = _REFERENCE.sub(r"\1", text)
    text = _LITERAL.sub(r"`\1`", text)
    # Reference names are resolved outside code only: `a_b_` in code stays as written.
    parts = _CODE_SPAN.split(text)
    return "".join(
        part if n % 2 else _NAMED_REF.sub(r"\1", part) for n, part in enumerate(parts)
    )


def _inline_plain(text: str) -> str:
    """A heading's words without markup: what a reader searches for."""
    return " ".join(_inline(text).replace("`", "").replace("**", "").split())


def _role(match: re.Match[str]) -> str:
    role, target = match[1], match[2]
    if link := re.fullmatch(r"(.+?)\s*<[^<>]+>", target, flags=re.DOTALL):
        text = link[1]  # the words the author chose for the link
    else:
        text = target.lstrip("!")
        if text.startswith("~"):
            text = text[1:].rsplit(".", 1)[-1]
        if role in ("pep", "rfc"):
            text = f"{role.upper()} {text}"
    return f"`{text}`" if role in _CODE_ROLES else text


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _tidy(lines: list[str]) -> str:
    text = "\n".join(lines)
    return re.sub(r"\n{3,}", "\n\n", text).strip("\n").rstrip()
