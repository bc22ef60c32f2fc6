"""Block Kit for tickets: the "New ticket" modal, what its submission says, where it came
from (carried in `private_metadata`), and the "My tickets" modal."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from adapters.slack.mrkdwn import to_mrkdwn
from core.tickets.commands import list_text
from core.tickets.model import (
    DESCRIPTION_MAX,
    PRIORITIES,
    TITLE_MAX,
    Ticket,
    TicketError,
    check_priority,
    clean_title,
)

FORM_CALLBACK = "ticket_form"
TITLE, DESCRIPTION, PRIORITY = "title", "description", "priority"
DEFAULT_PRIORITY = "medium"
# Slack refuses a plain_text_input whose max_length is over 3000, and an initial value
# longer than max_length.
_INPUT_MAX = 3000
_SECTION_MAX = 3000
View = dict[str, Any]


@dataclass(frozen=True, kw_only=True, slots=True)
class Origin:
    """Where the form was opened: a channel, and for a message shortcut that message
    (and its thread). None of it on the Home tab."""

    channel: str | None = None
    thread_ts: str | None = None
    message_ts: str | None = None

    def dump(self) -> str:
        data = {"c": self.channel, "t": self.thread_ts, "m": self.message_ts}
        return json.dumps({k: v for k, v in data.items() if v})

    @classmethod
    def load(cls, metadata: str | None) -> Origin:
        try:
            data = json.loads(metadata or "{}")
        except ValueError:
            return cls()
        if not isinstance(data, dict):
            return cls()

        def text(key: str) -> str | None:
            value = data.get(key)
            return value if isinstance(value, str) and value else None

        return cls(channel=text("c"), thread_ts=text("t"), message_ts=text("m"))


@dataclass(frozen=True, kw_only=True, slots=True)
class Form:
    title: str
    description: str
    priority: str


def plain(text: str) -> dict[str, Any]:
    return {"type": "plain_text", "text": text}


def form_view(origin: Origin, *, title: str = "", description: str = "") -> View:
    title_input: dict[str, Any] = {
        "type": "plain_text_input", "action_id": TITLE, "max_length": TITLE_MAX,
        "placeholder": plain("Printer on floor 2 is broken"),
    }
    if title:
        title_input["initial_value"] = title[:TITLE_MAX]
    description_input: dict[str, Any] = {
        "type": "plain_text_input", "action_id": DESCRIPTION, "multiline": True,
        "max_length": min(DESCRIPTION_MAX, _INPUT_MAX),
    }
    if description:
        description_input["initial_value"] = description[:_INPUT_MAX]
    options = [{"text": plain(p.capitalize()), "value": p} for p in PRIORITIES]
    return {
        "type": "modal",
        "callback_id": FORM_CALLBACK,
        "title": plain("New ticket"),
        "submit": plain("Open ticket"),
        "close": plain("Cancel"),
        "private_metadata": origin.dump(),
        "blocks": [
            {"type": "input", "block_id": TITLE, "label": plain("Title"),
             "element": title_input},
            {"type": "input", "block_id": DESCRIPTION, "label": plain("Description"),
             "optional": True, "element": description_input},
            {"type": "input", "block_id": PRIORITY, "label": plain("Priority"),
             "element": {
                 "type": "static_select", "action_id": PRIORITY, "options": options,
                 "initial_option": next(o for o in options if o["value"] == DEFAULT_PRIORITY),
             }},
        ],
    }


def draft_from_message(text: str) -> tuple[str, str]:
    """A message as (title, description): its first line, and all of it."""
    first = next((line for line in text.splitlines() if line.strip()), "")
    title = " ".join(first.split())
    if len(title) > TITLE_MAX:
        title = title[: TITLE_MAX - 1].rstrip() + "…"
    return title, text.strip()


def read_form(view: Mapping[str, Any]) -> Form:
    values = (view.get("state") or {}).get("values") or {}

    def field(block: str) -> Mapping[str, Any]:
        found = (values.get(block) or {}).get(block)
        return found if isinstance(found, Mapping) else {}

    selected = field(PRIORITY).get("selected_option") or {}
    return Form(
        title=str(field(TITLE).get("value") or ""),
        description=str(field(DESCRIPTION).get("value") or ""),
        priority=str(selected.get("value") or ""),
    )


def form_errors(form: Form) -> dict[str, str]:
    """block_id → the one-line error Slack shows under that field; empty when valid."""
    errors: dict[str, str] = {}
    try:
        clean_title(form.title)
    except TicketError as e:
        errors[TITLE] = str(e)
    try:
        check_priority(form.priority)
    except TicketError as e:
        errors[PRIORITY] = str(e)
    if len(form.description.strip()) > DESCRIPTION_MAX:
        errors[DESCRIPTION] = f"The description is too long; keep it under {DESCRIPTION_MAX}."
    return errors


def list_view(tickets: list[Ticket]) -> View:
    """The person's open tickets in a modal (the Home tab has no ephemeral messages)."""
    return {
        "type": "modal",
        "title": plain("My tickets"),
        "close": plain("Close"),
        "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": chunk}}
                   for chunk in _chunks(to_mrkdwn(list_text(tickets)))],
    }


def _chunks(text: str) -> list[str]:
    """Whole lines, at most `_SECTION_MAX` characters per section."""
    chunks: list[str] = []
    for line in text.split("\n"):
        line = line[:_SECTION_MAX]
        if chunks and len(chunks[-1]) + 1 + len(line) <= _SECTION_MAX:
            chunks[-1] += "\n" + line
        else:
            chunks.append(line)
    return chunks
