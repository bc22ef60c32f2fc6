"""Tickets from Slack over real signed HTTP: `/ticket`, the modal and its submission, the
message shortcut and the Home tab buttons. Each acts as the verified Slack user, shows
its answers only to them, and never calls the model."""

from __future__ import annotations

import copy
import json
from typing import Any
from urllib.parse import parse_qsl, urlencode

import pytest
from aiohttp.test_utils import TestClient

from adapters.slack.translate import thread_ref
from core.messages import Sender
from core.tickets.model import TITLE_MAX, Ticket
from tests.e2e.conftest import services, serving
from tests.e2e.slack.conftest import (
    ASKER,
    FIXTURES,
    TEAM,
    SlackSettings,
    fixture,
    post_event,
)
from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.slack_api import FakeSlack

FORM = "application/x-www-form-urlencoded"
ADA = Sender(id=f"slack:{TEAM}:{ASKER}")
GRACE_ID = "W222"
GRACE = Sender(id=f"slack:{TEAM}:{GRACE_ID}")


def command_body(text: str, *, user: str = ASKER, channel: str = "C111") -> str:
    """The fixture's slash-command form body, as `/ticket <text>` from `user`."""
    raw = (FIXTURES / "bolt_slash_command_body.form.txt").read_text().strip()
    fields = dict(parse_qsl(raw, keep_blank_values=True))
    fields.update(command="/ticket", text=text, user_id=user, channel_id=channel)
    return urlencode(fields)


async def ticket_command(app: TestClient[Any, Any], text: str, **who: Any) -> dict[str, Any]:
    response = await post_event(app, command_body(text, **who), content_type=FORM)
    assert response.status == 200
    text = await response.text()
    body: dict[str, Any] = json.loads(text) if text else {}  # a bare ack has no body
    return body


async def interact(app: TestClient[Any, Any], payload: dict[str, Any]) -> Any:
    """An interactivity payload, form-encoded as Slack sends it (`payload=<json>`)."""
    response = await post_event(app, urlencode({"payload": json.dumps(payload)}),
                                content_type=FORM)
    assert response.status == 200
    text = await response.text()
    return json.loads(text) if text else None


def submission(view: dict[str, Any], *, title: str | None, description: str | None = None,
               priority: str | None = "medium", user: str = ASKER) -> dict[str, Any]:
    """The fixture's view_submission, for the modal `view` as the user filled it in."""
    body = copy.deepcopy(fixture("bolt_view_submission_payload.json"))
    body["user"]["id"] = user
    body["view"].update(
        callback_id=view["callback_id"], blocks=view["blocks"],
        private_metadata=view["private_metadata"],
        state={"values": {
            "title": {"title": {"type": "plain_text_input", "value": title}},
            "description": {"description": {"type": "plain_text_input", "value": description}},
            "priority": {"priority": {
                "type": "static_select",
                "selected_option": None if priority is None else {
                    "text": {"type": "plain_text", "text": priority}, "value": priority},
            }},
        }},
    )
    return body


def button(action_id: str, *, user: str = ASKER) -> dict[str, Any]:
    """The fixture's block_actions click, on a Home tab button."""
    body = copy.deepcopy(fixture("bolt_block_actions_payload.json"))
    body["user"]["id"] = user
    body["container"] = {"type": "view", "view_id": "VHOME"}
    body.pop("channel")
    body.pop("response_url")
    body["view"] = {"id": "VHOME", "type": "home", "blocks": [], "private_metadata": ""}
    body["actions"][0].update(action_id=action_id, block_id="tickets", value="")
    return body


def message_shortcut(text: str, *, ts: str = "1583636382.000300",
                     thread_ts: str | None = None) -> dict[str, Any]:
    """A `message_action` as Slack sends it (the shape of bolt-python's shortcut tests)."""
    message: dict[str, Any] = {"type": "message", "text": text, "user": GRACE_ID, "ts": ts,
                               "team": TEAM}
    if thread_ts:
        message["thread_ts"] = thread_ts
    return {
        "type": "message_action", "token": "verification_token",
        "action_ts": "1583637157.207593",
        "team": {"id": TEAM, "domain": "test-test"},
        "user": {"id": ASKER, "name": "ada", "team_id": TEAM},
        "channel": {"id": "C111", "name": "dev"},
        "callback_id": "create_ticket_from_message", "trigger_id": "111.222.xxx",
        "message_ts": ts, "message": message,
        "response_url": "https://hooks.slack.com/app/T111/111/xxx",
    }


async def tickets_of(app: TestClient[Any, Any], who: Sender) -> list[Ticket]:
    found: list[Ticket] = await services(app).tickets.list(who, include_closed=True)
    return found


def field(view: dict[str, Any], block_id: str) -> dict[str, Any]:
    element: dict[str, Any] = next(
        b for b in view["blocks"] if b.get("block_id") == block_id
    )["element"]
    return element


@pytest.fixture(autouse=True)
def no_model(llm: FakeOpenAI) -> Any:
    yield
    assert llm.requests == []  # no ticket path asks the model


async def test_ticket_new_opens_a_ticket_owned_by_the_slack_user(
    app: TestClient[Any, Any]
) -> None:
    answer = await ticket_command(app, "new Printer on floor 2 is broken")

    (ticket,) = await tickets_of(app, ADA)
    assert ticket.title == "Printer on floor 2 is broken"
    assert ticket.requester == f"slack:{TEAM}:{ASKER}"
    assert ticket.requester_name == "Ada Lovelace"
    assert ticket.origin is not None and ticket.origin.conversation == "C111"
    assert answer["response_type"] == "ephemeral"
    assert f"*{ticket.number}*" in answer["text"]
    assert answer["text"].startswith("Opened *TCK-")


async def test_ticket_list_shows_only_my_tickets_privately(app: TestClient[Any, Any]) -> None:
    await ticket_command(app, "new VPN drops every hour")
    await ticket_command(app, "new Grace's own problem", user=GRACE_ID)

    answer = await ticket_command(app, "list")

    assert answer["response_type"] == "ephemeral"
    assert "VPN drops every hour" in answer["text"]
    assert "Grace" not in answer["text"]


async def test_showing_another_users_ticket_is_a_one_line_not_found(
    app: TestClient[Any, Any]
) -> None:
    await ticket_command(app, "new Grace's laptop", user=GRACE_ID)
    (theirs,) = await tickets_of(app, GRACE)

    answer = await ticket_command(app, f"show {theirs.number}")

    assert answer["text"] == f"There is no ticket {theirs.number} of yours."
    assert answer["response_type"] == "ephemeral"
    assert await tickets_of(app, GRACE) == [theirs]


async def test_closing_another_users_ticket_leaves_it_open(app: TestClient[Any, Any]) -> None:
    await ticket_command(app, "new Grace's laptop", user=GRACE_ID)
    (theirs,) = await tickets_of(app, GRACE)

    answer = await ticket_command(app, f"close {theirs.number}")

    assert "\n" not in answer["text"] and "no ticket" in answer["text"]
    (still,) = await tickets_of(app, GRACE)
    assert still.status == "open"


async def test_ticket_without_text_opens_the_form(
    app: TestClient[Any, Any], slack: FakeSlack
) -> None:
    answer = await ticket_command(app, "")

    assert answer == {}  # a bare acknowledgement: the modal is the answer
    (opened,) = slack.calls_to("views.open")
    view = opened.body["view"]
    assert opened.body["trigger_id"] == "111.111.xxx"
    assert view["type"] == "modal" and view["callback_id"] == "ticket_form"
    assert field(view, "title")["max_length"] == TITLE_MAX
    assert field(view, "description")["multiline"] is True
    priority = field(view, "priority")
    assert [o["value"] for o in priority["options"]] == ["low", "medium", "high", "urgent"]
    assert priority["initial_option"]["value"] == "medium"
    assert json.loads(view["private_metadata"]) == {"c": "C111"}


async def test_a_form_without_a_title_is_answered_next_to_the_title(
    app: TestClient[Any, Any], slack: FakeSlack
) -> None:
    await ticket_command(app, "")
    view = slack.calls_to("views.open")[0].body["view"]

    answer = await interact(app, submission(view, title="   ", priority="urgent"))

    assert answer == {"response_action": "errors", "errors": {"title": "A ticket needs a title."}}
    assert await tickets_of(app, ADA) == []
    assert slack.ephemerals == []


async def test_a_bad_priority_and_an_overlong_title_are_both_flagged(
    app: TestClient[Any, Any], slack: FakeSlack
) -> None:
    await ticket_command(app, "")
    view = slack.calls_to("views.open")[0].body["view"]

    answer = await interact(app, submission(view, title="x" * (TITLE_MAX + 1), priority="meh"))

    assert answer["response_action"] == "errors"
    assert set(answer["errors"]) == {"title", "priority"}
    assert await tickets_of(app, ADA) == []


async def test_a_valid_form_opens_the_ticket_and_confirms_privately(
    app: TestClient[Any, Any], slack: FakeSlack
) -> None:
    await ticket_command(app, "")
    view = slack.calls_to("views.open")[0].body["view"]

    answer = await interact(app, submission(
        view, title="Printer on floor 2", description="It prints blank pages.", priority="high",
    ))

    assert answer is None  # an empty 200 closes the modal
    (ticket,) = await tickets_of(app, ADA)
    assert (ticket.title, ticket.description, ticket.priority) == (
        "Printer on floor 2", "It prints blank pages.", "high")
    assert ticket.origin is not None and ticket.origin.conversation == "C111"
    assert ticket.origin_link is None  # a slash command has no message to link to
    (confirmation,) = slack.ephemerals
    assert confirmation["channel"] == "C111" and confirmation["user"] == ASKER
    assert ticket.number in confirmation["text"]


async def test_the_message_shortcut_opens_the_form_prefilled_from_the_message(
    app: TestClient[Any, Any], slack: FakeSlack
) -> None:
    text = "VPN keeps dropping\nEvery hour since Monday, on wifi and cable."

    await interact(app, message_shortcut(text, ts="1583636382.000300",
                                         thread_ts="1583636000.000100"))

    (opened,) = slack.calls_to("views.open")
    view = opened.body["view"]
    assert field(view, "title")["initial_value"] == "VPN keeps dropping"
    assert field(view, "description")["initial_value"] == text
    assert json.loads(view["private_metadata"]) == {
        "c": "C111", "t": "1583636000.000100", "m": "1583636382.000300"}


async def test_a_ticket_from_a_message_links_back_to_its_thread(
    app: TestClient[Any, Any], slack: FakeSlack
) -> None:
    await interact(app, message_shortcut("Printer jammed", thread_ts="1583636000.000100"))
    view = slack.calls_to("views.open")[0].body["view"]

    await interact(app, submission(view, title="Printer jammed", description="Printer jammed"))

    (ticket,) = await tickets_of(app, ADA)
    assert ticket.origin is not None
    assert (ticket.origin.conversation, ticket.origin.thread) == ("C111", "1583636000.000100")
    assert ticket.origin_link == "https://fake.slack.com/archives/C111/p1583636382000300"
    (confirmation,) = slack.ephemerals
    assert confirmation["thread_ts"] == "1583636000.000100"
    assert ticket.number in confirmation["text"]


async def test_the_home_tab_offers_ticket_buttons(
    app: TestClient[Any, Any], slack: FakeSlack
) -> None:
    body = fixture("bolt_app_home_opened_messages_tab.json")
    body["event"]["tab"] = "home"

    await post_event(app, body)

    (publish,) = slack.calls_to("views.publish")
    actions = [b for b in publish.body["view"]["blocks"] if b["type"] == "actions"]
    assert [e["action_id"] for e in actions[0]["elements"]] == ["ticket_new", "ticket_list"]


async def test_the_home_new_ticket_button_opens_the_form_and_confirms_by_dm(
    app: TestClient[Any, Any], slack: FakeSlack
) -> None:
    await interact(app, button("ticket_new"))

    (opened,) = slack.calls_to("views.open")
    view = opened.body["view"]
    assert view["callback_id"] == "ticket_form"
    assert json.loads(view["private_metadata"]) == {}

    await interact(app, submission(view, title="New laptop please"))

    (ticket,) = await tickets_of(app, ADA)
    assert ticket.origin is None
    (dm,) = slack.calls_to("chat.postMessage")
    assert dm.body["channel"] == ASKER and ticket.number in dm.body["text"]


async def test_the_home_my_tickets_button_lists_mine_in_a_modal(
    app: TestClient[Any, Any], slack: FakeSlack
) -> None:
    await ticket_command(app, "new VPN drops every hour")
    await ticket_command(app, "new Grace's own problem", user=GRACE_ID)

    await interact(app, button("ticket_list"))

    (opened,) = slack.calls_to("views.open")
    text = "\n".join(b["text"]["text"] for b in opened.body["view"]["blocks"])
    assert "VPN drops every hour" in text and "Grace" not in text


async def test_a_forged_ticket_command_creates_nothing(app: TestClient[Any, Any]) -> None:
    response = await post_event(app, command_body("new Forged"), content_type=FORM,
                                secret="not-the-signing-secret")

    assert response.status == 401
    assert await tickets_of(app, ADA) == []


async def test_the_requester_hears_of_a_status_change_in_the_thread_it_came_from(
    slack_settings: SlackSettings, slack: FakeSlack,
) -> None:
    asker = Sender(id=f"slack:{TEAM}:{ASKER}", name="Ada")
    agent = Sender(id="slack:T111:U999", name="Grace")
    async with serving(slack_settings(ticket_agents=agent.id)) as app:
        tickets = services(app).tickets
        ticket = await tickets.create(asker, title="VPN drops",
                                      origin=thread_ref(TEAM, "C111", "1700000001.000100"))
        await tickets.set_status(agent, ticket.number, "resolved")
        [notice] = await slack.wait_for("chat.postMessage")

    assert notice.body["channel"] == "C111"
    assert notice.body["thread_ts"] == "1700000001.000100"
    assert notice.body["text"].startswith(f"<@{ASKER}> ")
    assert ticket.number in notice.body["text"] and "resolved" in notice.body["text"]
