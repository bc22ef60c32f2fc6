"""Block Kit pieces: sources and feedback under an answer, the Home tab, the help text."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from adapters.slack.mrkdwn import to_mrkdwn
from core.messages import Citation

FEEDBACK_ACTION = "feedback"
STOP_ACTION = "switchboard_stop"
STOP_BLOCK = "switchboard_stop"
TICKET_NEW_ACTION = "ticket_new"
TICKET_LIST_ACTION = "ticket_list"
Block = dict[str, Any]

SUGGESTED_PROMPTS = (
    {"title": "What can you do?", "message": "What can you help me with?"},
    {"title": "Connect Slack", "message": "How do I connect Switchboard to Slack?"},
    {"title": "Summarise this thread", "message": "Summarise this thread in a few bullet points."},
)
# Offered when Slack says which channel the person has open beside the assistant.
SUMMARISE_CHANNEL = {
    "title": "Summarise this channel",
    "message": "Summarise the latest messages in this channel in a few bullet points.",
}


def answer_footer(
    citations: Sequence[Citation], turn_id: int | None, *, feedback: bool
) -> list[Block]:
    """What goes under a finished answer: its sources, then 👍/👎 (when it can be rated)."""
    blocks: list[Block] = []
    if citations:
        blocks.append(sources_block(citations))
    if feedback and turn_id is not None:
        blocks.append(feedback_block(turn_id))
    return blocks


def sources_block(citations: Sequence[Citation]) -> Block:
    # A context block takes at most 10 elements; one mrkdwn element keeps every source.
    lines = [
        f"[{c.index}] " + (to_mrkdwn(f"[{c.title}]({c.url})") if c.url else to_mrkdwn(c.title))
        for c in citations
    ]
    return {
        "type": "context",
        "elements": [{"type": "mrkdwn", "text": ("*Sources*\n" + "\n".join(lines))[:3000]}],
    }


def feedback_block(turn_id: int) -> Block:
    def button(text: str, rating: str) -> Block:
        return {
            "text": {"type": "plain_text", "text": text},
            "accessibility_label": f"{text}: rate this answer",
            "value": f"{rating}:{turn_id}",
        }

    return {
        "type": "context_actions",
        "elements": [
            {
                "type": "feedback_buttons",
                "action_id": FEEDBACK_ACTION,
                "positive_button": button("Good answer", "up"),
                "negative_button": button("Bad answer", "down"),
            }
        ],
    }


def stop_blocks(item_id: int) -> list[Block]:
    """A Stop button for one answer, in the answer's own message while it is written (a
    stream's `blocks` chunk, or the blocks of a message updated as the answer grows). Its
    value names the inbox item; the clicker is checked against the item's sender, never
    trusted from the value."""
    return [
        {"type": "actions", "block_id": STOP_BLOCK, "elements": [{
            "type": "button", "action_id": STOP_ACTION, "style": "danger",
            "text": {"type": "plain_text", "text": "Stop"},
            "accessibility_label": "Stop writing this answer",
            "value": str(item_id),
        }]},
    ]


def parse_stop(value: str) -> int | None:
    return int(value) if value.isdigit() else None


def parse_feedback(value: str) -> tuple[str, int] | None:
    rating, _, turn = value.partition(":")
    if rating not in ("up", "down") or not turn.isdigit():
        return None
    return rating, int(turn)


def help_text(name: str) -> str:
    return (
        f"*{name}* answers questions from your organisation's documents, with sources.\n"
        f"• Mention @{name} in a channel: I answer in a thread, and follow-ups in that "
        "thread need no mention.\n"
        f"• Send me a direct message, or open my Messages tab.\n"
        "• Rate an answer with 👍 or 👎 so it gets better."
    )


def home_view(name: str, *, tickets: bool = False) -> Block:
    return {
        "type": "home",
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": f"{name}"[:150]}},
            {"type": "section", "text": {"type": "mrkdwn", "text": help_text(name)}},
            *(ticket_blocks() if tickets else []),
            {"type": "divider"},
            {
                "type": "context",
                "elements": [
                    {
                        "type": "mrkdwn",
                        "text": "Answers only use documents that everyone who can see "
                        "them may read.",
                    }
                ],
            },
        ],
    }


def ticket_blocks() -> list[Block]:
    """The Home tab's ticket buttons: a new ticket, or the list of yours."""
    def button(text: str, action: str, **extra: Any) -> Block:
        return {"type": "button", "text": {"type": "plain_text", "text": text},
                "action_id": action, **extra}

    return [
        {"type": "divider"},
        {"type": "section", "text": {"type": "mrkdwn", "text": (
            "*Support tickets*\nOpen a ticket, or follow the ones you opened. "
            "`/ticket help` works in any channel.")}},
        {"type": "actions", "block_id": "tickets", "elements": [
            button("New ticket", TICKET_NEW_ACTION, style="primary"),
            button("My tickets", TICKET_LIST_ACTION),
        ]},
    ]
