"""Teams activities (the recorded fixtures, unchanged) → the core's message type."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from adapters.teams.translate import (
    clean_text,
    mentions_bot,
    message_id,
    sender_id,
    tenant_of,
    thread_ref,
    to_inbound,
)
from core.messages import ConversationRef, Sender

FIXTURES = Path(__file__).parents[2] / "fixtures" / "teams"
TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"


def fixture(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / name).read_text())
    return data


def test_the_bots_mention_is_stripped_though_its_text_is_not_the_bots_name() -> None:
    activity = fixture("bbjs_message_channel_mention.json")

    assert mentions_bot(activity)
    assert clean_text(activity) == "1"


def test_only_the_bots_own_mention_entity_is_removed() -> None:
    activity = copy.deepcopy(fixture("bbjs_message_channel_mention.json"))
    activity["text"] = "<at>My Combined</at> ask <at>Ada</at> what My Combined said"
    activity["entities"].append(
        {"type": "mention", "text": "<at>Ada</at>", "mentioned": {"id": "29:ada", "name": "Ada"}}
    )

    assert clean_text(activity) == "ask Ada what My Combined said"


def test_a_mention_of_someone_else_is_not_a_mention_of_the_bot() -> None:
    activity = copy.deepcopy(fixture("bbjs_message_channel_mention.json"))
    activity["entities"][0]["mentioned"]["id"] = "29:someone-else"

    assert not mentions_bot(activity)


def test_a_channel_reply_is_keyed_by_channel_and_thread_root() -> None:
    activity = fixture("bbjs_message_channel_mention.json")

    message = to_inbound(activity, sender=Sender(id="teams:t:u"), reference={"k": "v"})

    assert message.conversation == ConversationRef(
        channel="teams",
        tenant=TENANT,
        conversation="19:097e6717fd7245bdbeba6baa13840db8@thread.skype",
        thread="1571537152320",
    )
    assert not message.is_direct
    assert message.id == f"{activity['conversation']['id']}/1571537152320"
    assert message.channel_data["reference"] == {"k": "v"}
    assert message.sent_at.year == 2019


def test_a_personal_chat_is_direct_and_has_no_thread() -> None:
    activity = fixture("bbjs_message_personal.json")

    message = to_inbound(activity, sender=Sender(id="x"), reference={})

    assert message.is_direct
    assert message.text == "file"
    assert message.conversation.thread is None
    assert message.channel_data["conversation_type"] == "personal"


def test_the_sender_is_their_azure_ad_object_id_in_their_tenant() -> None:
    activity = fixture("bbjs_message_personal.json")

    assert tenant_of(activity) == TENANT
    assert sender_id(TENANT, activity["from"]) == (
        f"teams:{TENANT}:6d415fdd-f97e-4f70-ac45-e69601e4ecb2"
    )


def test_a_redelivered_activity_has_the_same_message_id() -> None:
    activity = fixture("bbjs_message_personal.json")

    assert message_id(copy.deepcopy(activity)) == message_id(activity)


def test_html_entities_and_markup_in_text_become_plain_text() -> None:
    activity = copy.deepcopy(fixture("bbjs_message_personal.json"))
    activity["text"] = "<p>What&#39;s&nbsp;new  in  <b>Q3</b>?</p>"

    assert clean_text(activity) == "What's new in Q3?"


def test_thread_ref_without_a_thread() -> None:
    assert thread_ref("t", "a:1x").thread is None
