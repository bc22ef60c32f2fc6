"""The commands the Teams bot answers without asking the model, as (title, description).

The bot and the app manifest's command menu both read this list, so they cannot drift.
"""

from __future__ import annotations

COMMANDS: tuple[tuple[str, str], ...] = (
    ("help", "What I can do"),
    ("ticket", "Open a support ticket (a form)"),
    ("ticket list", "Your open tickets"),
)
