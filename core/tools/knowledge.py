"""`search_knowledge`: the model searches the knowledge base again, with its own words.

Results are filtered for the people who will see the answer, exactly as the passages
found before the model ran, and numbered after them so the answer can cite them.
"""

from __future__ import annotations

from core.errors import ToolError
from core.tools.registry import ToolContext, tool

RESULTS = 5
SNIPPET_CHARS = 600


@tool(title="Searching the knowledge base")
async def search_knowledge(ctx: ToolContext, query: str) -> str:
    """Search the organisation's documents. Use it when the passages you were given do
    not answer the question, with a short query in your own words (a product, an error
    message, a procedure). Cite what you use as [n] with the numbers shown.

    Args:
        query: what to look for, in a few words.
    """
    if ctx.services.knowledge is None:
        raise ToolError("The knowledge base is not available in this deployment.")
    query = " ".join(query.split())[:500]
    if not query:
        raise ToolError("The query is empty: say what to look for.")
    found = await ctx.services.knowledge.search(query, audience=ctx.audience, limit=RESULTS)
    if not found:
        return f"Nothing in the knowledge base matches {query!r}."
    lines = []
    for number, passage in ctx.sources.add(found):
        text = " ".join(passage.text.split())[:SNIPPET_CHARS]
        source = f" ({passage.url})" if passage.url else ""
        lines.append(f"[{number}] {passage.title}{source}\n{text}")
    return "\n\n".join(lines)
