"""How readers lay out the blocks they find as text the chunker splits well."""

from __future__ import annotations

from collections.abc import Sequence

Block = tuple[str, str]  # (kind, text); kind is "p", "li", "tr" or "pre"


def join_blocks(blocks: Sequence[Block]) -> str:
    """List items and table rows stay on adjacent lines (one paragraph: the chunker keeps
    a short list or table together); other blocks are separated by a blank line."""
    out: list[str] = []
    for i, (kind, text) in enumerate(blocks):
        if i:
            same = kind in ("li", "tr") and blocks[i - 1][0] == kind
            out.append("\n" if same else "\n\n")
        out.append(text)
    return "".join(out)
