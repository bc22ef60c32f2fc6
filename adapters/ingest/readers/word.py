"""Word `.docx` through python-docx: paragraphs styled "Heading 1".."Heading 6" cut the
sections; tables are read row by row (`a | b`) in their place in the text; bulleted and
numbered paragraphs become `- ` lines."""

from __future__ import annotations

import io
import re
import zipfile

import docx
from docx.table import Table
from docx.text.paragraph import Paragraph

from adapters.ingest.document import Parsed, Section, Unreadable
from adapters.ingest.readers.layout import Block, join_blocks

_HEADING = re.compile(r"Heading ([1-6])\Z")


def read(data: bytes) -> Parsed:
    try:
        document = docx.Document(io.BytesIO(data))
    except (zipfile.BadZipFile, KeyError, ValueError) as e:
        raise Unreadable(f"corrupt Word document: {e}") from e
    sections: list[Section] = []
    path: list[tuple[int, str]] = []
    lines: list[Block] = []
    first_heading: str | None = None
    for block in document.iter_inner_content():
        if isinstance(block, Table):
            lines.extend(("tr", row) for row in _rows(block))
            continue
        level = _heading_level(block)
        text = block.text.strip()
        if level is not None and text:
            sections.append(Section(headings=tuple(t for _, t in path), text=join_blocks(lines)))
            path, lines = [*(e for e in path if e[0] < level), (level, text)], []
            first_heading = first_heading or text
        elif text:
            lines.append(("li", f"- {text}") if _is_list(block) else ("p", text))
    sections.append(Section(headings=tuple(t for _, t in path), text=join_blocks(lines)))
    title = (document.core_properties.title or "").strip() or first_heading
    return Parsed(title=title, sections=tuple(sections))


def _heading_level(paragraph: Paragraph) -> int | None:
    style = paragraph.style.name if paragraph.style is not None else ""
    match = _HEADING.match(style or "")
    return int(match.group(1)) if match else None


def _is_list(paragraph: Paragraph) -> bool:
    style = paragraph.style.name if paragraph.style is not None else ""
    return (style or "").startswith("List") or paragraph._p.pPr is not None and (
        paragraph._p.pPr.numPr is not None
    )


def _rows(table: Table) -> list[str]:
    rows = []
    for row in table.rows:
        cells: list[str] = []
        seen: set[int] = set()
        for cell in row.cells:
            # A merged cell is returned once per grid column it spans.
            if id(cell._tc) not in seen:
                seen.add(id(cell._tc))
                cells.append(" ".join(cell.text.split()))
        if any(cells):
            rows.append(" | ".join(cells))
    return rows
