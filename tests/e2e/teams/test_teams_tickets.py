"""Tickets in Teams: typed commands and the Adaptive Card form, through the real adapter
with signed activities; answered with cards, errors by the fields, never by the model."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient

from core.messages import Sender
from tests.e2e.conftest import services, serving
from tests.e2e.teams.conftest import (
    ASKER_AAD,
    PERSONAL_AAD,
    TENANT,
    channel_mention,
    personal,
    post_activity,
)
from tests.fakes.bot_framework import ChannelIdentity, FakeConnector
from tests.fakes.openai_server import FakeOpenAI

CARD = "application/vnd.microsoft.card.adaptive"


def card_of(activity: dict[str, Any]) -> dict[str, Any]:
    [attachment] = activity["attachments"]
    assert attachment["contentType"] == CARD
    content: dict[str, Any] = attachment["content"]
    return content


async def test_a_typed_ticket_command_opens_a_ticket_as_the_sender(
    app: TestClient[Any, Any], identity: ChannelIdentity, connector: FakeConnector,
    llm: FakeOpenAI,
) -> None:
    body = personal(connector, "ticket new Printer on floor 2 jams")

    assert (await post_activity(app, identity, body)).status == 200
    assert (await post_activity(app, identity, body)).status == 200  # redelivered

    message = await connector.wait_for_text("Opened")
    [ticket] = await services(app).tickets.list(Sender(id=f"teams:{TENANT}:{PERSONAL_AAD}"))
    assert ticket.number in message.text and ticket.title == "Printer on floor 2 jams"
    assert len([m for m in connector.messages() if "Opened" in m.text]) == 1
    assert llm.requests == []


async def test_the_form_card_validates_and_creates_a_ticket_answered_with_a_card(
    app: TestClient[Any, Any], identity: ChannelIdentity, connector: FakeConnector,
    llm: FakeOpenAI,
) -> None:
    await post_activity(app, identity, channel_mention(connector, "ticket"))
    form = card_of(await connector.wait_for_activity(lambda a: bool(a.get("attachments"))))
    assert [e.get("id") for e in form["body"] if "id" in e] == ["title", "description", "priority"]

    submit = channel_mention(connector, "", id="1700000000050")
    submit["text"] = ""
    submit["entities"] = []
    submit["value"] = {"action": "switchboard.ticket.create", "title": " ",
                       "description": "It smells of toner", "priority": "urgent"}
    await post_activity(app, identity, submit)
    again = card_of(await connector.wait_for_activity(
        lambda a: "attention" in str(a.get("attachments"))))
    title_at = [e.get("id") for e in again["body"]].index("title")
    assert again["body"][title_at + 1]["text"] == "A ticket needs a title."
    assert again["body"][title_at + 1]["color"] == "attention"

    submit["id"] = "1700000000051"
    submit["value"]["title"] = "Toner smell"
    await post_activity(app, identity, submit)
    done = card_of(await connector.wait_for_activity(
        lambda a: "Toner smell" in str(a.get("attachments"))))

    [ticket] = await services(app).tickets.list(Sender(id=f"teams:{TENANT}:{ASKER_AAD}"))
    assert done["body"][0]["text"] == f"{ticket.number}: Toner smell"
    assert ticket.priority == "urgent" and ticket.origin is not None
    assert ticket.origin.thread == "1571537152320"
    assert llm.requests == []


async def test_someone_elses_ticket_is_not_found_in_teams(
    app: TestClient[Any, Any], identity: ChannelIdentity, connector: FakeConnector,
) -> None:
    other = await services(app).tickets.create(Sender(id="teams:x:someone"), title="Secret")

    await post_activity(app, identity, personal(connector, f"ticket close {other.number}"))

    message = await connector.wait_for_text("no ticket")
    assert other.number in message.text
    owner = Sender(id="teams:x:someone")
    assert (await services(app).tickets.show(owner, other.number)).status == "open"


async def test_the_requester_hears_of_a_status_change_in_the_teams_thread(
    teams_settings: Any, identity: ChannelIdentity, connector: FakeConnector,
) -> None:
    agent = Sender(id="teams:agent", name="Grace")
    async with serving(teams_settings(ticket_agents=agent.id)) as app:
        body = channel_mention(connector, "ticket new Projector in room 4 is dead")
        await post_activity(app, identity, body)
        opened = await connector.wait_for_text("Opened")
        [ticket] = await services(app).tickets.list(Sender(id=f"teams:{TENANT}:{ASKER_AAD}"))

        await services(app).tickets.set_status(agent, ticket.number, "resolved")
        notice = await connector.wait_for_text("is now")

    assert ticket.number in opened.text
    assert notice.conversation_id == body["conversation"]["id"]  # the same channel thread
    assert ticket.number in notice.text and "resolved" in notice.text
