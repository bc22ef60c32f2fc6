"""The requester hears about a status change in the thread the ticket came from — through
the real composition root and the wiring `bots/server.py` runs."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiohttp import web

from bots.bootstrap import Switchboard, bootstrap
from bots.settings import load_settings
from bots.tickets import ChannelNotifier, ticket_context, ticket_events, ticket_notifier
from core.messages import ConversationRef, Sender
from core.tickets.model import Ticket
from core.tickets.notices import TicketNotices, status_notice
from tests.fakes.scripted import ScriptedChatModel

ADA = Sender(id="slack:T1:U1", name="Ada Lovelace", email="ada@example.com")
AGENT = Sender(id="slack:T1:U9", name="Grace", groups=("it-support",))
THREAD = ConversationRef(channel="slack", tenant="T1", conversation="C1", thread="1.000")


@dataclass(frozen=True)
class Notice:
    where: ConversationRef
    text: str
    mention: Sender | None


class RecordingNotifier:
    def __init__(self) -> None:
        self.notices: list[Notice] = []
        self.arrived = asyncio.Event()

    async def notify(
        self, where: ConversationRef, text: str, *, mention: Sender | None = None
    ) -> None:
        self.notices.append(Notice(where, text, mention))
        self.arrived.set()

    async def send(self, where: ConversationRef, text: str, mention: Sender | None) -> None:
        await self.notify(where, text, mention=mention)


@pytest.fixture
async def sb(tmp_path: Path) -> AsyncIterator[Switchboard]:
    settings = load_settings(data_dir=tmp_path, ticket_agents="it-support")
    async with bootstrap(settings, model=ScriptedChatModel(), open_knowledge=False) as services:
        yield services


async def test_a_status_change_is_told_once_in_the_thread_and_comments_are_not(
    sb: Switchboard,
) -> None:
    recorder = RecordingNotifier()
    sb.tickets.subscribe(TicketNotices(recorder))
    ticket = await sb.tickets.create(ADA, title="Printer on floor 2", origin=THREAD)
    await sb.tickets.comment(ADA, ticket.number, "It jams on A3 too")
    await sb.tickets.comment(AGENT, ticket.number, "Looking at it")
    await sb.tickets.assign(AGENT, ticket.number, AGENT.id)

    await sb.tickets.set_status(AGENT, ticket.number, "resolved")

    assert recorder.notices == [Notice(
        THREAD, f"{ticket.number} *Printer on floor 2* is now **resolved**.",
        Sender(id=ADA.id, name="Ada Lovelace"),
    )]


async def test_the_requester_is_not_told_what_they_did_themselves(sb: Switchboard) -> None:
    recorder = RecordingNotifier()
    sb.tickets.subscribe(TicketNotices(recorder))
    ticket = await sb.tickets.create(ADA, title="VPN drops", origin=THREAD)

    await sb.tickets.close(ADA, ticket.number)

    assert recorder.notices == []


async def test_a_ticket_without_a_thread_has_nowhere_to_be_told(sb: Switchboard) -> None:
    recorder = RecordingNotifier()
    sb.tickets.subscribe(TicketNotices(recorder))
    ticket = await sb.tickets.create(ADA, title="New laptop")

    await sb.tickets.set_status(AGENT, ticket.number, "in progress")

    assert recorder.notices == []


async def test_someone_of_another_channel_is_named_but_not_mentioned(sb: Switchboard) -> None:
    recorder = RecordingNotifier()
    sb.tickets.subscribe(TicketNotices(recorder))
    web_user = Sender(id="web:ada", name="Ada")
    ticket = await sb.tickets.create(web_user, title="Badge", origin=THREAD)

    await sb.tickets.set_status(AGENT, ticket.number, "in_progress")

    [notice] = recorder.notices
    assert notice.mention is None and notice.text.endswith("is now **in progress**.")


def test_the_notice_escapes_the_title_and_says_when_a_ticket_is_reopened() -> None:
    when = datetime(2025, 5, 1, tzinfo=UTC)
    ticket = Ticket(
        id=42, title="Fix *all* the [printers]", description="", priority="low",
        status="open", requester=ADA.id, requester_name=None, origin=THREAD,
        origin_link=None, assignee=None, created_at=when, updated_at=when,
    )

    assert status_notice(ticket, "closed") == (
        r"TCK-1042 *Fix \*all\* the \[printers\]* is **open** again."
    )


async def test_the_wiring_posts_through_the_channel_that_registered(sb: Switchboard) -> None:
    slack = RecordingNotifier()
    async with ticket_events(sb) as notifier:
        notifier.register("slack", slack.send)
        in_slack = await sb.tickets.create(ADA, title="Printer", origin=THREAD)
        on_web = await sb.tickets.create(
            ADA, title="Monitor", origin=ConversationRef(channel="web", tenant="local",
                                                         conversation="c-1"),
        )
        await sb.tickets.set_status(AGENT, on_web.number, "resolved")  # nowhere to push
        await sb.tickets.set_status(AGENT, in_slack.number, "resolved")
        await slack.arrived.wait()

    assert [(n.where, n.mention) for n in slack.notices] == [(THREAD, Sender(
        id=ADA.id, name="Ada Lovelace"))]


async def test_a_failing_channel_never_reaches_the_person_changing_the_ticket(
    sb: Switchboard, caplog: pytest.LogCaptureFixture,
) -> None:
    tried = asyncio.Event()

    async def broken(where: ConversationRef, text: str, mention: Sender | None) -> None:
        tried.set()
        raise ConnectionError("slack is down")

    async with ticket_events(sb) as notifier:
        notifier.register("slack", broken)
        ticket = await sb.tickets.create(ADA, title="Printer", origin=THREAD)
        changed = await sb.tickets.set_status(AGENT, ticket.number, "resolved")
        await tried.wait()

    assert changed.status == "resolved"
    assert "could not post a notice to slack conversation C1" in caplog.text


async def test_the_cleanup_context_lets_a_channel_register_before_it_starts(
    sb: Switchboard,
) -> None:
    key = web.AppKey("switchboard", Switchboard)
    slack = RecordingNotifier()
    app = web.Application()

    async def services(app: web.Application) -> AsyncIterator[None]:
        app[key] = sb
        yield

    async def slack_channel(app: web.Application) -> AsyncIterator[None]:
        ticket_notifier(app).register("slack", slack.send)
        yield

    app.cleanup_ctx.extend([services, slack_channel, ticket_context(key)])
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        assert isinstance(app[key], Switchboard)
        assert isinstance(ticket_notifier(app), ChannelNotifier)
        ticket = await sb.tickets.create(ADA, title="Printer", origin=THREAD)
        await sb.tickets.set_status(AGENT, ticket.number, "resolved")
        await slack.arrived.wait()
    finally:
        await runner.cleanup()

    assert len(slack.notices) == 1
