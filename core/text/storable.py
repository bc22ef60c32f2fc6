"""Text as every database can store it, and the same on each.

PostgreSQL refuses NUL in text (SQLite keeps it), and a lone surrogate cannot be encoded
for either. Before, a message with a NUL was accepted on PostgreSQL (the inbox keeps it
as JSON, where `\\u0000` is allowed) and every claim of it failed when its turn was
written: the claim loop retried the same batch forever and nothing after it was answered.
So text from outside is made storable where it becomes a value of the core: a message,
a turn, a ticket, a rating's comment.
"""

from __future__ import annotations


def storable(text: str) -> str:
    """`text` without NUL characters, each lone surrogate replaced by U+FFFD."""
    if "\x00" in text:
        text = text.replace("\x00", "")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        # UTF-16 pairs surrogates that belong together; only the lone ones are replaced.
        text = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return text
