"""What nothing listens to: acknowledged, not refused.

Bolt answers a request no listener matches with 404 (and, over Socket Mode, leaves it
unacknowledged). Slack then retries the event and counts the failures against the app;
an event subscription we do not use (a scope's side events, events Slack adds) or a
click on a button nothing handles is no error. With `raise_error_for_unhandled_request`
Bolt hands such requests to the error handler, which answers 200 with this.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from slack_bolt.error import BoltUnhandledRequestError
from slack_bolt.response import BoltResponse

log = logging.getLogger(__name__)


def acknowledge(error: BoltUnhandledRequestError) -> BoltResponse:
    """200, and a debug line naming what was ignored (never its text)."""
    log.debug("acknowledged and ignored an unhandled Slack request: %s", _what(error.body))
    return BoltResponse(status=200, body="")


def _what(body: Mapping[str, Any]) -> str:
    kind = str(body.get("type") or ("slash_command" if body.get("command") else "unknown"))
    event = body.get("event")
    if kind == "event_callback" and isinstance(event, Mapping):
        subtype = f"/{event['subtype']}" if event.get("subtype") else ""
        return f"event {event.get('type')}{subtype} ({body.get('event_id')})"
    actions = body.get("actions")
    if isinstance(actions, list) and actions and isinstance(actions[0], Mapping):
        return f"{kind} action_id {actions[0].get('action_id')}"
    view = body.get("view")
    if isinstance(view, Mapping):
        return f"{kind} callback_id {view.get('callback_id')}"
    return f"{kind} {body.get('callback_id') or body.get('command') or ''}".rstrip()
