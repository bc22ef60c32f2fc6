"""Slack's inbound message markup (``&amp;`` escapes and ``<…>`` entities) read as plain text."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime

# Entities and escapes are decoded in one pass, so decoded text is never decoded again:
# Slack sends a typed "&lt;" as "&amp;lt;", which must come out as "&lt;".
_TOKEN = re.compile(r"<(?P<entity>[^<>]*)>|&(?P<escape>amp|lt|gt);")
_ESCAPES = {"amp": "&", "lt": "<", "gt": ">"}
_ESCAPE = re.compile(r"&(amp|lt|gt);")
_SCHEME = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]*:")
_USER = re.compile(r"<@(\w+)(?:\|[^<>]*)?>")
_ID = re.compile(r"[@#]\w+")
# Slack links a typed "example.com" or "a@b.c" as <http://example.com|example.com>.
_AUTOLINK_PREFIX = re.compile(r"^(?:mailto:|https?://)")
_BROADCASTS = frozenset({"here", "channel", "everyone"})
_CLOSING_PUNCTUATION = frozenset(",.;:!?)")


def mentioned_users(text: str) -> list[str]:
    """User ids mentioned in `text`, in order of first mention."""
    return list(dict.fromkeys(_USER.findall(text)))


def strip_mention(text: str, user_id: str) -> str:
    """`text` without any mention of `user_id`, and without the gaps those mentions leave."""
    mention = rf"<@{re.escape(user_id)}(?:\|[^<>]*)?>"
    # A comma or colon right after the mention belongs to it ("<@BOT>: help") at a line start.
    run = re.compile(rf"[ \t]*(?:{mention}[ \t]*)+(?P<punct>[,:](?!\S))?[ \t]*")
    return run.sub(_gap, text).strip()


def _gap(match: re.Match[str]) -> str:
    start, rest = match.start(), match.string[match.end() :]
    if start == 0 or match.string[start - 1] == "\n":
        return ""
    punct = match["punct"] or ""
    if not rest or rest[0] == "\n":
        return punct
    if punct:
        return punct + " "
    return "" if rest[0] in _CLOSING_PUNCTUATION else " "


def to_plain_text(text: str, *, user_names: Mapping[str, str] = {}) -> str:
    """`text` with entities spelled out (``@ada``, ``#general``, ``label (url)``) and unescaped."""

    def decode(match: re.Match[str]) -> str:
        if match["escape"]:
            return _ESCAPES[match["escape"]]
        return _entity(match["entity"], user_names)

    return _TOKEN.sub(decode, text)


def _unescape(text: str) -> str:
    return _ESCAPE.sub(lambda match: _ESCAPES[match[1]], text)


def _entity(body: str, user_names: Mapping[str, str]) -> str:
    target, _, escaped_label = body.partition("|")
    label = _unescape(escaped_label)
    if target.startswith("@") and _ID.fullmatch(target):
        user = target[1:]
        return "@" + (user_names.get(user) or label.removeprefix("@") or user)
    if target.startswith("#") and _ID.fullmatch(target):
        return "#" + (label.removeprefix("#") or target[1:])
    if target.startswith("!"):
        return _command(target[1:], label) or f"<{_unescape(body)}>"
    if _SCHEME.match(target) and not any(space.isspace() for space in target):
        return _link(_unescape(target), label)
    return f"<{_unescape(body)}>"  # not an entity Slack would send: keep the text


def _command(command: str, label: str) -> str | None:
    name, _, argument = command.partition("^")
    if name in _BROADCASTS:
        return "@" + name
    if name == "subteam":
        return "@" + (label.removeprefix("@") or argument)
    if name == "date":
        return label or _timestamp(argument.partition("^")[0])
    return label or None


def _timestamp(seconds: str) -> str | None:
    try:
        moment = datetime.fromtimestamp(int(seconds), UTC)
    except (ValueError, OverflowError, OSError):
        return None
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def _link(url: str, label: str) -> str:
    if not label or label == url:
        return url
    if label == _AUTOLINK_PREFIX.sub("", url):
        return label  # what the user typed; the scheme Slack added tells the model nothing
    return f"{label} ({url})"
