"""`shape.conforms` against msrest itself: a body it lets through is one botbuilder reads
(and whose reference `reference_of` builds as botbuilder did), on the recorded activities
and on many mutations of them."""

from __future__ import annotations

import copy
import json
import random
from pathlib import Path
from typing import Any

import pytest
from botbuilder.core import TurnContext
from botbuilder.schema import Activity

from adapters.teams.references import reference_of
from adapters.teams.shape import conforms

FIXTURES = Path(__file__).parents[2] / "fixtures" / "teams"
RECORDED = [
    "bbjs_conversationUpdate_groupChat.json", "bbjs_conversationUpdate_teamMemberAdded.json",
    "bbjs_invoke_task_fetch.json", "bbjs_message_channel_mention.json",
    "bbjs_message_personal.json", "msdocs_invoke_message_submitAction_feedback.json",
]
# Values of every JSON type, and strings msrest reads specially (dates, booleans).
ODD_VALUES: list[Any] = [
    None, "", "text", "true", "0", "2019-10-20T02:05:52.349Z", "2019-13-45T99:00:00Z",
    "not a date", 0, 1, 7, -1.5, True, False, [], [None], ["x"], [{}], [{"type": 3}],
    {}, {"id": 5}, {"type": "mention", "mentioned": {"id": "x"}}, {"isGroup": "yes"},
    {"a": [1, {"b": None}]},
]


def botbuilder_reads(body: dict[str, Any]) -> Activity | None:
    try:
        return Activity().deserialize(copy.deepcopy(body))
    except Exception:  # noqa: BLE001 - msrest raises several kinds for a malformed body
        return None


def botbuilder_reference(activity: Activity) -> dict[str, Any]:
    return dict(TurnContext.get_conversation_reference(activity).serialize())


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, item in value.items():
            found += paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += paths(item, (*prefix, index))
    return found


def replaced(body: dict[str, Any], path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    changed = copy.deepcopy(body)
    target: Any = changed
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = copy.deepcopy(value)
    return changed


def mutations(seed: int, count: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    bodies = [json.loads((FIXTURES / name).read_text()) for name in RECORDED]
    extra_keys = ["timestamp", "localTimestamp", "expiration", "membersAdded", "entities",
                  "attachments", "suggestedActions", "textHighlights", "relatesTo",
                  "historyDisclosed", "semanticAction", "value", "channelData", "from",
                  "conversation", "recipient", "locale", "id", "type", "deliveryMode"]
    found = []
    for _ in range(count):
        body = copy.deepcopy(rng.choice(bodies))
        for _ in range(rng.randint(1, 3)):
            if rng.random() < 0.3:
                body[rng.choice(extra_keys)] = copy.deepcopy(rng.choice(ODD_VALUES))
            else:
                body = replaced(body, rng.choice(paths(body)), rng.choice(ODD_VALUES))
        found.append(body)
    return found


@pytest.mark.parametrize("name", RECORDED)
def test_recorded_activities_conform_and_their_references_are_botbuilders(name: str) -> None:
    body = json.loads((FIXTURES / name).read_text())

    activity = botbuilder_reads(body)

    assert conforms(body) and activity is not None
    assert reference_of(body) == botbuilder_reference(activity)


def test_whatever_conforms_botbuilder_reads_with_the_same_reference() -> None:
    bodies = mutations(seed=20240501, count=3000)
    conforming = 0
    for body in bodies:
        if not conforms(body):
            continue
        conforming += 1
        activity = botbuilder_reads(body)
        assert activity is not None, body
        assert reference_of(body) == botbuilder_reference(activity), body
    # The mutations reach both sides of the check.
    assert 300 < conforming < len(bodies) - 300


@pytest.mark.parametrize(
    "change",
    [
        {"timestamp": "yesterday"}, {"from": "someone"}, {"entities": ["mention"]},
        {"conversation": {"id": "19:x", "isGroup": "true"}}, {"id": 1700000000123},
        {"membersAdded": {"id": "x"}}, {"textHighlights": [{"text": "a", "occurrence": "1"}]},
        {"value": json.loads("[" * 40 + "]" * 40)},
    ],
    ids=["bad date", "account not an object", "entity not an object",
         "boolean as a string", "number for a string", "object for a list",
         "string for a number", "deeply nested value"],
)
def test_what_botbuilder_would_read_differently_or_refuse_does_not_conform(
    change: dict[str, Any],
) -> None:
    body = {**json.loads((FIXTURES / "bbjs_message_personal.json").read_text()), **change}

    assert not conforms(body)
