"""`/ticket …` typed in `switchboard chat`: answered by the ticket service, not the model."""

from __future__ import annotations

import asyncio
import getpass
import socket
from pathlib import Path

from bots.bootstrap import bootstrap
from bots.settings import load_settings
from core.messages import Sender
from tests.e2e.test_cli import chat
from tests.fakes.scripted import ScriptedChatModel, says


def test_ticket_commands_in_the_terminal_skip_the_model_and_stay_in_the_thread(
    tmp_path: Path,
) -> None:
    model = ScriptedChatModel([says("You opened TCK-1001.")])
    first = chat(tmp_path, "/ticket new Printer is broken\n/ticket list\n", model)
    assert "Opened **TCK-1001**: Printer is broken." in first
    assert "- **TCK-1001** · open · medium · Printer is broken" in first
    assert model.requests == []

    second = chat(tmp_path, "/ticket show TCK-1001\n/ticket close 1001\nwhich ticket?\n", model)
    assert "you> /ticket new Printer is broken" in second  # kept in the thread's history
    assert "**Printer is broken**" in second and "Closed **TCK-1001**" in second
    # The model sees the commands and their answers as earlier turns of the thread.
    [request] = model.requests
    assert [m.content for m in request.messages[-3:]] == [
        "/ticket close 1001", "Closed **TCK-1001**: Printer is broken.", "which ticket?"
    ]

    async def stored() -> tuple[str, str]:
        async with bootstrap(load_settings(data_dir=tmp_path), model=model,
                             open_knowledge=False) as sb:
            me = Sender(id=f"cli:{socket.gethostname()}:{getpass.getuser()}")
            ticket = await sb.tickets.show(me, "TCK-1001")
            assert ticket.origin is not None
            return ticket.status, ticket.origin.channel

    assert asyncio.run(stored()) == ("closed", "cli")
