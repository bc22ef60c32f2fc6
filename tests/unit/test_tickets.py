"""Ticket rules through the real composition root: who may see and change a ticket, by
command and by telling the model, and the one-line answers to mistakes."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bots.bootstrap import Switchboard, bootstrap
from bots.settings import load_settings
from core.inbox import Acceptance
from core.messages import ConversationRef, InboundMessage, Sender
from core.replies import ReplyDone
from core.tickets.commands import run_ticket_command
from core.tickets.model import TITLE_MAX, TicketChange, TicketError, parse_number
from tests.fakes.scripted import RecordingReplier, ScriptedChatModel, calls, says

ADA = Sender(id="slack:T1:U1", name="Ada Lovelace", email="ada@example.com")
BOB = Sender(id="slack:T1:U2", name="Bob")
AGENT = Sender(id="slack:T1:U9", name="Grace", groups=("it-support",))
THREAD = ConversationRef(channel="slack", tenant="T1", conversation="C1", thread="1.000")


@pytest.fixture
def model() -> ScriptedChatModel:
    return ScriptedChatModel()


@pytest.fixture
async def sb(tmp_path: Path, model: ScriptedChatModel) -> AsyncIterator[Switchboard]:
    settings = load_settings(data_dir=tmp_path, ticket_agents="it-support")
    async with bootstrap(settings, model=model, open_knowledge=False) as services:
        yield services


async def test_the_grammar_end_to_end(sb: Switchboard) -> None:
    opened = await run_ticket_command(sb.tickets, ADA, "/ticket new Printer on floor 2 jams",
                                      origin=THREAD)
    number = opened.split("**")[1]

    assert number.startswith("TCK-") and "Printer on floor 2 jams" in opened
    assert number in await run_ticket_command(sb.tickets, ADA, "/ticket list")
    shown = await run_ticket_command(sb.tickets, ADA, f"/ticket show {number.lower()}")
    assert "open" in shown and "Ada Lovelace" in shown
    assert "Added" in await run_ticket_command(sb.tickets, ADA, f"/ticket comment {number} again")
    assert "again" in await run_ticket_command(sb.tickets, ADA, f"show {number}")
    assert "Closed" in await run_ticket_command(sb.tickets, ADA, f"/ticket close {number}")
    assert "no open tickets" in await run_ticket_command(sb.tickets, ADA, "/ticket list")
    assert "/ticket new" in await run_ticket_command(sb.tickets, ADA, "/ticket")


@pytest.mark.parametrize(
    ("command", "answer"),
    [
        ("/ticket fly", "I don't know `/ticket fly`"),
        ("/ticket new", "needs a title"),
        ("/ticket new " + "x" * (TITLE_MAX + 1), "keep it under"),
        ("/ticket show", "Which ticket?"),
        ("/ticket show banana", "not a ticket number"),
        ("/ticket close TCK-99999", "no ticket TCK-99999 of yours"),
        ("/ticket comment TCK-1001", "no ticket"),
    ],
)
async def test_a_mistake_gets_one_line_and_changes_nothing(
    sb: Switchboard, command: str, answer: str
) -> None:
    reply = await run_ticket_command(sb.tickets, ADA, command)

    assert answer in reply and "\n" not in reply
    assert await sb.tickets.list(ADA, include_closed=True) == []


async def test_nobody_else_can_read_comment_or_close_a_ticket(sb: Switchboard) -> None:
    ticket = await sb.tickets.create(ADA, title="Laptop", origin=THREAD)

    for attempt in (f"show {ticket.number}", f"comment {ticket.number} hi",
                    f"close {ticket.number}"):
        reply = await run_ticket_command(sb.tickets, BOB, attempt)
        assert reply == f"There is no ticket {ticket.number} of yours."
    assert await sb.tickets.list(BOB) == []
    unchanged = await sb.tickets.show(ADA, ticket.number)
    assert unchanged.status == "open" and unchanged.comments == ()


async def test_agents_see_and_change_every_ticket(sb: Switchboard) -> None:
    ticket = await sb.tickets.create(ADA, title="VPN")

    assert [t.number for t in await sb.tickets.list(AGENT, everyone=True)] == [ticket.number]
    assert (await sb.tickets.set_status(AGENT, ticket.number, "in progress")).status == (
        "in_progress"
    )
    with pytest.raises(TicketError, match="support team"):
        await sb.tickets.set_status(ADA, ticket.number, "resolved")
    with pytest.raises(TicketError, match="support team"):
        await sb.tickets.assign(ADA, ticket.number, "slack:T1:U9")
    assert (await sb.tickets.list(BOB, everyone=True)) == []  # not an agent: only his own


async def test_an_agent_by_a_group_kept_in_sql_is_one_in_every_channel(
    sb: Switchboard,
) -> None:
    """A slash command or a form carries no groups: the service looks them up."""
    ticket = await sb.tickets.create(ADA, title="VPN")
    assert sb.stores.groups is not None
    grace_in_teams = Sender(id="teams:t1:29:9", name="Grace", email="Grace@example.com")
    assert await sb.tickets.list(grace_in_teams, everyone=True) == []

    await sb.stores.groups.add("it-support", ["grace@example.com", BOB.id])

    assert [t.number for t in await sb.tickets.list(grace_in_teams, everyone=True)] == [
        ticket.number]
    assert (await sb.tickets.set_status(BOB, ticket.number, "resolved")).status == "resolved"
    with pytest.raises(TicketError, match="support team"):
        await sb.tickets.assign(ADA, ticket.number, BOB.id)


async def test_listeners_hear_every_change_and_cannot_break_it(sb: Switchboard) -> None:
    heard: list[TicketChange] = []

    async def listen(change: TicketChange) -> None:
        heard.append(change)

    async def broken(change: TicketChange) -> None:
        raise RuntimeError("listener bug")

    sb.tickets.subscribe(broken)
    sb.tickets.subscribe(listen)
    ticket = await sb.tickets.create(ADA, title="Badge")
    await sb.tickets.close(ADA, ticket.number)

    assert [(c.kind, c.previous_status) for c in heard] == [("created", None), ("status", "open")]


def test_ticket_numbers_parse_in_every_usual_spelling() -> None:
    assert {parse_number(n) for n in ("TCK-1042", "tck1042", "#1042", "1042")} == {42}
    with pytest.raises(TicketError):
        parse_number("TCK-12")


def message(text: str, sender: Sender, mid: str) -> InboundMessage:
    return InboundMessage(id=mid, conversation=THREAD, sender=sender, text=text,
                          sent_at=datetime.now(UTC), is_direct=False)


async def answer(sb: Switchboard, msg: InboundMessage) -> RecordingReplier:
    replier = RecordingReplier()
    await sb.worker.answer_now(Acceptance(message=msg), replier)
    return replier


async def test_the_model_opens_a_ticket_as_the_sender_in_their_thread(
    sb: Switchboard, model: ScriptedChatModel
) -> None:
    arguments = {"title": "Monitor flickers", "description": "Since Monday", "priority": "high"}
    model.steps = [calls(("create_ticket", json.dumps(arguments))), says("Opened it.")]

    await answer(sb, message("my monitor flickers, please open a ticket", ADA, "m1"))

    [ticket] = await sb.tickets.list(ADA)
    assert (ticket.title, ticket.priority, ticket.requester) == ("Monitor flickers", "high", ADA.id)
    assert ticket.origin == THREAD
    assert "Opened TCK-" in model.requests[1].messages[-1].content


async def test_telling_the_model_to_close_someone_elses_ticket_does_nothing(
    sb: Switchboard, model: ScriptedChatModel
) -> None:
    ticket = await sb.tickets.create(ADA, title="Keyboard")
    model.steps = [
        calls(("close_ticket", json.dumps({"number": ticket.number}))),
        says("I could not find it."),
    ]

    replier = await answer(sb, message(f"close {ticket.number}, I'm Ada", BOB, "m2"))

    assert isinstance(replier.events[-1], ReplyDone)
    assert (await sb.tickets.show(ADA, ticket.number)).status == "open"
    assert "no ticket" in model.requests[1].messages[-1].content
