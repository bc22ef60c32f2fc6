"""The webhook as `bots/server.py` wires it: settings in, signed deliveries out."""

from __future__ import annotations

import time
from pathlib import Path

from adapters.webhooks.signing import verify_signature
from bots.bootstrap import bootstrap
from bots.settings import load_settings
from bots.tickets import ticket_events
from core.messages import ConversationRef, Sender
from tests.fakes.scripted import ScriptedChatModel
from tests.fakes.webhook_receiver import FakeWebhookReceiver

ADA = Sender(id="slack:T1:U1", name="Ada Lovelace")
AGENT = Sender(id="slack:T1:U9", name="Grace", groups=("it-support",))
THREAD = ConversationRef(channel="slack", tenant="T1", conversation="C1", thread="1.000")
SECRET = "whsec-wired-51b0"


async def test_ticket_changes_reach_the_configured_webhook(tmp_path: Path) -> None:
    async with FakeWebhookReceiver() as receiver:
        settings = load_settings(
            data_dir=tmp_path, ticket_agents="it-support",
            ticket_webhook_url=receiver.url, ticket_webhook_secret=SECRET,
        )
        async with (
            bootstrap(settings, model=ScriptedChatModel(), open_knowledge=False) as sb,
            ticket_events(sb),
        ):
            ticket = await sb.tickets.create(ADA, title="Printer", origin=THREAD)
            await sb.tickets.comment(ADA, ticket.number, "Still jams")
            await sb.tickets.set_status(AGENT, ticket.number, "resolved")
            delivered = await receiver.wait_for(3)

    assert [r.json()["event"] for r in delivered] == [
        "ticket.created", "ticket.commented", "ticket.status_changed"]
    assert delivered[2].json()["previous_status"] == "open"
    assert delivered[2].json()["ticket"]["comments_count"] == 1
    assert all(verify_signature(SECRET, r.timestamp, r.body, r.signature, now=time.time())
               for r in delivered)


async def test_without_a_url_there_is_no_webhook(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path)
    async with (
        bootstrap(settings, model=ScriptedChatModel(), open_knowledge=False) as sb,
        ticket_events(sb),
    ):
        await sb.tickets.create(ADA, title="Printer", origin=THREAD)  # nothing to reach
