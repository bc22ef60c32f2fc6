"""`switchboard chat`: the terminal channel on the same core as every other channel."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TextIO

from adapters.sockets.control import answers as control_answers
from adapters.sockets.control import control_socket
from adapters.terminal.chat import Stop, chat_loop, relayed
from bots.bootstrap import Switchboard, bootstrap
from bots.settings import Settings
from core.messages import InboundMessage
from core.ports import ChatModel


def chat_log(settings: Settings) -> Path | None:
    """Where a chat session logs. When stderr is the terminal the conversation is on, log
    lines would land between the answers: they go to DATA_DIR/logs/chat.log instead.
    Otherwise (redirected, piped, a service) they stay on stderr, apart from the answers."""
    return settings.data_dir / "logs" / "chat.log" if sys.stderr.isatty() else None


async def run_chat(
    settings: Settings,
    *,
    lines: TextIO = sys.stdin,
    out: TextIO = sys.stdout,
    model: ChatModel | None = None,
    log: Path | None = None,
) -> None:
    """`log`: the file this session logs to (from `chat_log`), named at the start.

    With an assistant running on this data directory (its control socket answers), that
    assistant answers, with its index and model; this process only records and shows.
    Otherwise this process answers, with the index opened here."""
    notes = (f"Log: {log}",) if log is not None else ()
    if await control_answers(control_socket(settings.data_dir)):
        async with bootstrap(settings, answers=False, listens=True) as sb:
            answer = relayed(inbox=sb.inbox, relay=sb.relay, work_added=sb.work_added)
            notes = ("Answered by the assistant running on this data directory.", *notes)
            await chat_loop(name=sb.profile.name, answer=answer, conversations=sb.conversations,
                            lines=lines, out=out, notes=notes, stop=_stopper(sb))
        return
    async with bootstrap(settings, model=model) as sb:
        assert sb.worker is not None
        await chat_loop(name=sb.profile.name, answer=sb.worker.answer_now,
                        conversations=sb.conversations, lines=lines, out=out, notes=notes,
                        stop=_stopper(sb))


def _stopper(sb: Switchboard) -> Stop:
    """Ctrl-C stops the answer to the message it interrupts, as the person who sent it."""

    async def stop(message: InboundMessage) -> object:
        return await sb.stopper.stop_message(message.conversation, message.id, message.sender)

    return stop
