"""What a Slack request carries (signed, over HTTP; or over Socket Mode), read and
checked before Bolt sees it.

Bolt parses the body with `json.loads` (a `RecursionError` on deep nesting) and reads
fields as it finds them (an `AttributeError` when `event` is a string); the listeners
then index what they need (`event["channel"]`, `float(event["ts"])`). Slack retries any
request not answered 2xx, so a signed payload whose fields are missing or of the wrong
type is acknowledged and ignored, with one log line, instead of failing in a listener.

Only the fields Bolt or a listener reads are checked, as strictly as JSON allows; a
message event's own fields only for the kinds the listeners answer (edits, joins and
other subtypes carry different ones and are ignored by the listeners anyway).
"""

from __future__ import annotations

import logging
from typing import Annotated, Any, Required
from urllib.parse import parse_qsl

from pydantic import Field, StringConstraints, TypeAdapter, ValidationError
from typing_extensions import TypedDict

from adapters.slack.translate import ANSWERED_SUBTYPES
from core.json_input import Identifier, parse_json, problems

log = logging.getLogger(__name__)

# Slack timestamps are seconds and microseconds as text: "1610241741.000200".
Ts = Annotated[str, StringConstraints(pattern=r"^\d{1,10}(\.\d{1,9})?$")]


class _Id(TypedDict, total=False):
    id: Required[Identifier]


class _Authorization(TypedDict, total=False):
    team_id: Identifier | None
    enterprise_id: Identifier | None
    user_id: Identifier | None
    is_enterprise_install: bool | None


class _Common(TypedDict, total=False):
    """Read by Bolt from every payload to build its context."""

    type: str
    team_id: Identifier | None
    enterprise_id: Identifier | None
    team: Identifier | _Id | None
    enterprise: Identifier | _Id | None
    user: Identifier | _Id | None
    user_id: Identifier | None
    channel: Identifier | _Id | None
    channel_id: Identifier | None
    is_enterprise_install: bool | str | None
    authorizations: list[_Authorization] | None
    event_id: Identifier | None
    trigger_id: str | None
    callback_id: str | None
    response_url: str | None
    # Read as objects whenever present, whatever the payload's type (Bolt's warning about
    # a request nothing handled reads them too).
    event: dict[str, Any]
    view: dict[str, Any]
    actions: list[dict[str, Any] | None]


class _File(TypedDict, total=False):
    id: Identifier | None
    name: str | None
    title: str | None
    mimetype: str | None
    url_private: str | None
    size: int | None


class _Message(TypedDict, total=False):
    """A message event (`app_mention`, `message`), as the listeners read it."""

    type: Required[str]
    channel: Required[Identifier]
    ts: Required[Ts]
    subtype: str | None
    user: Identifier | None
    text: str | None
    thread_ts: Ts | None
    channel_type: str | None
    files: list[_File] | None
    bot_id: str | None
    bot_profile: dict[str, Any] | None
    user_team: Identifier | None
    team: Identifier | None


class _HomeOpened(TypedDict, total=False):
    type: Required[str]
    user: Required[Identifier]
    channel: Identifier | None
    tab: str | None


class _Event(TypedDict, total=False):
    type: Required[str]


class _AssistantContext(TypedDict, total=False):
    channel_id: Identifier | None


class _AssistantThread(TypedDict, total=False):
    """Bolt builds `say` and prompts from the thread itself and raises without it."""

    channel_id: Required[Identifier]
    thread_ts: Required[Ts]
    user_id: Identifier | None
    context: _AssistantContext | None


class _AssistantEvent(TypedDict, total=False):
    type: Required[str]
    assistant_thread: Required[_AssistantThread]


class _MessageCallback(TypedDict, total=False):
    event: Required[_Message]


class _HomeCallback(TypedDict, total=False):
    event: Required[_HomeOpened]


class _AssistantCallback(TypedDict, total=False):
    event: Required[_AssistantEvent]


class _OtherCallback(TypedDict, total=False):
    event: Required[_Event]


class _Action(TypedDict, total=False):
    action_id: Required[str]
    block_id: str | None
    value: str | None


class _MessageRef(TypedDict, total=False):
    ts: Ts | None
    thread_ts: Ts | None
    text: str | None


class _Container(TypedDict, total=False):
    channel_id: Identifier | None
    message_ts: Ts | None


class _BlockActions(TypedDict, total=False):
    user: Required[_Id]
    actions: Required[Annotated[list[_Action], Field(min_length=1)]]
    channel: _Id | None
    container: _Container | None
    message: _MessageRef | None


class _SelectedOption(TypedDict, total=False):
    value: str | None


class _Input(TypedDict, total=False):
    value: str | None
    selected_option: _SelectedOption | None


class _State(TypedDict, total=False):
    values: dict[str, dict[str, _Input]]


class _View(TypedDict, total=False):
    callback_id: Required[str]
    private_metadata: str | None
    state: _State | None


class _ViewSubmission(TypedDict, total=False):
    user: Required[_Id]
    view: Required[_View]


class _MessageAction(TypedDict, total=False):
    user: Required[_Id]
    callback_id: Required[str]
    channel: _Id | None
    message: _MessageRef | None
    message_ts: Ts | None


class _Command(TypedDict, total=False):
    command: Required[str]
    user_id: Required[Identifier]


_COMMON = TypeAdapter(_Common)
_KINDS: dict[str, TypeAdapter[Any]] = {
    "message": TypeAdapter(_MessageCallback),
    "app_mention": TypeAdapter(_MessageCallback),
    "app_home_opened": TypeAdapter(_HomeCallback),
    "assistant_thread_started": TypeAdapter(_AssistantCallback),
    "assistant_thread_context_changed": TypeAdapter(_AssistantCallback),
    "event_callback": TypeAdapter(_OtherCallback),
    "block_actions": TypeAdapter(_BlockActions),
    "view_submission": TypeAdapter(_ViewSubmission),
    "message_action": TypeAdapter(_MessageAction),
    "command": TypeAdapter(_Command),
}


def payload_of(body: str, content_type: str | None) -> dict[str, Any] | None:
    """The payload Bolt will read from `body` (`slack_bolt.request.internals.parse_body`:
    JSON, a form whose `payload` field is JSON, or a plain form), parsed strictly;
    None if that is not a JSON object."""
    if not body:
        return {}
    if content_type == "application/json" or body.startswith("{"):
        found = _json(body)
    elif "payload" in body:
        payload = dict(parse_qsl(body, keep_blank_values=True)).get("payload")
        found = {} if payload is None else _json(payload)
    else:
        return dict(parse_qsl(body, keep_blank_values=True))
    return found if isinstance(found, dict) else None


def _json(text: str) -> Any:
    try:
        return parse_json(text)
    except ValueError:
        return None


def usable(payload: object) -> bool:
    """Whether Bolt and the listeners can read `payload`; if not, one line says which
    fields are wrong (never their values) and the caller acknowledges and ignores it."""
    wrong = unusable(payload) if isinstance(payload, dict) else ["payload: not an object"]
    if wrong:
        kind = kind_of(payload) if isinstance(payload, dict) else "?"
        log.warning("ignored a Slack %s with unusable fields: %s", kind, "; ".join(wrong))
    return not wrong


def unusable(payload: dict[str, Any]) -> list[str]:
    """What is wrong with the fields Bolt and the listeners read (empty when nothing is)."""
    try:
        _COMMON.validate_python(payload, strict=True)
        if (kind := _KINDS.get(kind_of(payload))) is not None:
            kind.validate_python(payload, strict=True)
    except ValidationError as e:
        return problems(e)
    return []


def kind_of(payload: dict[str, Any]) -> str:
    """`command`, the event's type for an event callback, else the payload's type."""
    if "command" in payload:
        return "command"
    kind = payload.get("type")
    if kind == "event_callback":
        event = payload.get("event")
        if not isinstance(event, dict) or not isinstance(event_type := event.get("type"), str):
            return kind
        subtype = event.get("subtype")
        if event_type == "message" and isinstance(subtype, str) \
                and subtype not in ANSWERED_SUBTYPES:
            return kind  # an edit, a join…: other fields, and the listeners ignore it
        if event_type in _KINDS:
            return event_type
    return kind if isinstance(kind, str) else "?"
