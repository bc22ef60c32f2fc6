"""Conversation references and outgoing activities as plain JSON, held to what botbuilder
4.17.1 built and sent for the same activities (its models, `TurnContext`, msrest)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any, ClassVar

import pytest
from botbuilder.core import TurnContext
from botbuilder.schema import Activity, ConversationReference, Entity
from botframework.connector.aio import ConnectorClient
from msrest.authentication import BasicTokenAuthentication

from adapters.teams.outbound import connector_url
from adapters.teams.references import addressed, reference_of

FIXTURES = Path(__file__).parents[2] / "fixtures" / "teams"
INBOUND = ["bbjs_message_channel_mention.json", "bbjs_message_personal.json",
           "bbjs_conversationUpdate_groupChat.json", "bbjs_invoke_task_fetch.json"]


class AsSent(Entity):  # type: ignore[misc]
    """How the old replier got entities past msrest whole (its `JsonEntity`)."""

    _attribute_map: ClassVar[dict[str, dict[str, str]]] = {
        "type": {"key": "type", "type": "str"},
        "additional_properties": {"key": "", "type": "{object}"},
    }

    def __init__(self, data: dict[str, Any]) -> None:
        super().__init__(type=data["type"])
        self.additional_properties = {k: v for k, v in data.items() if k != "type"}


CITATIONS = {
    "type": "https://schema.org/Message", "@type": "Message", "@context": "https://schema.org",
    "@id": "", "additionalType": ["AIGeneratedContent"],
    "citation": [{"@type": "Claim", "position": 1, "appearance": {
        "@type": "DigitalDocument", "name": "VPN", "url": "https://x/vpn", "abstract": "VPN"}}],
}
STREAM = {"type": "streaminfo", "streamType": "streaming", "streamSequence": 2, "streamId": "7"}
CARD = {"type": "AdaptiveCard", "version": "1.5", "body": [{"type": "TextBlock", "text": "x"}]}
# (our activity, the botbuilder Activity the old code built for it)
OUTGOING: dict[str, tuple[dict[str, Any], Activity]] = {
    "typing": ({"type": "typing"}, Activity(type="typing")),
    "stream update": (
        {"type": "typing", "text": "so far", "entities": [STREAM]},
        Activity(type="typing", text="so far", entities=[AsSent(STREAM)]),
    ),
    "final answer": (
        {"type": "message", "text": "Answer [1]", "textFormat": "markdown",
         "entities": [{"type": "streaminfo", "streamType": "final", "streamId": "7"}, CITATIONS],
         "channelData": {"feedbackLoop": {"type": "default"}}},
        Activity(type="message", text="Answer [1]", text_format="markdown",
                 entities=[AsSent({"type": "streaminfo", "streamType": "final",
                                   "streamId": "7"}), AsSent(CITATIONS)],
                 channel_data={"feedbackLoop": {"type": "default"}}),
    ),
    "notice": (
        {"type": "message", "text": "TCK-1 is now **resolved**.", "textFormat": "markdown"},
        Activity(type="message", text="TCK-1 is now **resolved**.", text_format="markdown"),
    ),
}


def reference(name: str) -> dict[str, Any]:
    body = json.loads((FIXTURES / name).read_text())
    return dict(TurnContext.get_conversation_reference(Activity().deserialize(body)).serialize())


def botbuilder_sent(activity: Activity, stored: dict[str, Any]) -> dict[str, Any]:
    """What the old sender posted: the stored reference applied, then msrest's JSON."""
    ref = ConversationReference().deserialize(stored)
    outgoing = TurnContext.apply_conversation_reference(copy.deepcopy(activity), ref)
    outgoing.id = None
    return dict(outgoing.serialize())


@pytest.mark.parametrize("name", INBOUND)
def test_a_reference_is_the_one_botbuilder_stored(name: str) -> None:
    body = json.loads((FIXTURES / name).read_text())

    assert reference_of(body) == reference(name)
    # The same JSON, field for field and in the same order.
    assert json.dumps(reference_of(body)) == json.dumps(reference(name))


@pytest.mark.parametrize("kind", OUTGOING)
@pytest.mark.parametrize("name", INBOUND)
def test_an_outgoing_activity_is_what_botbuilder_sent(kind: str, name: str) -> None:
    ours, theirs = OUTGOING[kind]
    stored = reference(name)

    sent = addressed(ours, stored)

    assert json.dumps(sent) == json.dumps(botbuilder_sent(theirs, stored))


async def test_replies_within_a_turn_are_what_turn_context_sent() -> None:
    """Help, the welcome and ticket cards went out through `TurnContext.send_activity`."""
    from adapters.teams.bot import _said
    from adapters.teams.tickets import card_message

    stored = reference("bbjs_message_personal.json")
    incoming = Activity().deserialize(json.loads(
        (FIXTURES / "bbjs_message_personal.json").read_text()))
    sent: list[Activity] = []

    class Capture:
        async def send_activities(self, context: Any, activities: list[Activity]) -> list[Any]:
            sent.extend(activities)
            return []

    from botbuilder.core import CardFactory, MessageFactory

    context = TurnContext(Capture(), incoming)
    await context.send_activity("Hello **there**")
    await context.send_activity(MessageFactory.attachment(CardFactory.adaptive_card(CARD)))

    assert [json.dumps(a.serialize()) for a in sent] == [
        json.dumps(addressed(_said("Hello **there**"), stored)),
        json.dumps(addressed(card_message(CARD), stored)),
    ]


@pytest.mark.parametrize(
    "service_url",
    ["https://smba.trafficmanager.net/amer/", "https://smba.trafficmanager.net/amer",
     "https://smba.infra.gcc.teams.microsoft.com/teams/x/", "http://127.0.0.1:3978/"],
)
@pytest.mark.parametrize(
    ("conversation", "activity_id"),
    [("19:097e6717fd7245bdbeba6baa13840db8@thread.skype;messageid=1571537152320", "1571"),
     ("a:1VF4K2uXl-hg-wn2SSWJZYK7Cqox93Xp82wekVXkbOSa", "f:090e2569-a0c4-727d-e710-bd320c"),
     ("odd/id with spaces?&#", "ünïcode")],
)
def test_urls_are_the_ones_msrest_built(
    service_url: str, conversation: str, activity_id: str
) -> None:
    client = ConnectorClient(BasicTokenAuthentication({"access_token": "x"}), service_url)
    operations = client.conversations
    serialize = operations._serialize

    def msrest_url(template: str, **ids: str) -> str:
        args = {name: serialize.url(name, value, "str") for name, value in ids.items()}
        return str(operations._client.format_url(template, **args))

    reply = operations.reply_to_activity.metadata["url"]
    send = operations.send_to_conversation.metadata["url"]
    member = operations.get_conversation_member.metadata["url"]
    assert connector_url(service_url, conversation, "activities", activity_id) == msrest_url(
        reply, conversationId=conversation, activityId=activity_id)
    assert connector_url(service_url, conversation, "activities") == msrest_url(
        send, conversationId=conversation)
    assert connector_url(service_url, conversation, "members", activity_id) == msrest_url(
        member, conversationId=conversation, memberId=activity_id)


def test_the_recorded_reply_goes_to_the_recorded_url() -> None:
    recording = json.loads(
        (FIXTURES / "bbjs_outbound_reply_to_activity.recording.json").read_text())
    body = recording["body"]

    url = connector_url(body["serviceUrl"], body["conversation"]["id"], "activities",
                        body["replyToId"])

    assert url == recording["scope"].removesuffix(":443") + recording["path"]
