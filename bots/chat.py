"""`switchboard chat`: the terminal channel on the same core as every other channel."""

from __future__ import annotations

import asyncio
import getpass
import os
import socket
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from adapters.terminal.replier import TerminalReplier
from adapters.web.commands import TicketCommands
from bots.bootstrap import Switchboard, bootstrap
from bots.settings import Settings
from core.messages import ConversationRef, InboundMessage, Sender
from core.ports import ChatModel
from core.profiles import Profile
from core.threads import Conversation

HELP = (
    "Type a message and press Enter. /new starts a new thread, /ticket help shows the "
    "ticket commands, /quit leaves."
)


async def run_chat(
    settings: Settings,
    *,
    lines: TextIO = sys.stdin,
    out: TextIO = sys.stdout,
    model: ChatModel | None = None,
) -> None:
    # The embedded Qdrant shard belongs to one process (`switchboard serve` may hold it),
    # and nothing in the terminal chat reads it yet.
    async with bootstrap(settings, model=model, open_knowledge=False) as sb:
        sender = _local_sender()
        await sb.profiles.upsert(Profile(id=sender.id, name=sender.name, time_zone=_local_zone()))
        conv = await sb.conversations.latest(channel="cli", owner=sender.id)
        if conv is None:
            conv = await _new_conversation(sb, sender)
            out.write(f"{sb.profile.name} — {HELP}\n\n")
        else:
            await _show_recent(sb, conv, out)
        replier = TerminalReplier(out)
        # `/ticket …` is answered without the model, as in the web chat (same helper).
        commands = TicketCommands(
            tickets=sb.tickets, inbox=sb.inbox, conversations=sb.conversations,
            owner=sb.worker.owner, lease=sb.worker.lease,
        )
        interactive = lines.isatty()
        while True:
            if interactive:
                out.write("you> ")
                out.flush()
            line = await asyncio.to_thread(lines.readline)
            if not line:
                break
            text = line.strip()
            if text in ("/quit", "/exit"):
                break
            if text == "/new":
                conv = await _new_conversation(sb, sender)
                out.write("Started a new thread.\n\n")
                continue
            if text in ("/help", "?"):
                out.write(HELP + "\n")
                continue
            if not text:
                continue
            message = InboundMessage(
                id=uuid.uuid4().hex,
                conversation=conv.ref,
                sender=sender,
                text=text,
                sent_at=datetime.now(UTC),
                is_direct=True,
            )
            if commands.handles(message):
                await commands.answer_now(message, replier)
            else:
                await sb.worker.answer_now(message, replier)


async def _new_conversation(sb: Switchboard, sender: Sender) -> Conversation:
    ref = ConversationRef(channel="cli", tenant=socket.gethostname(), conversation=uuid.uuid4().hex)
    return await sb.conversations.get_or_create(ref, owner=sender.id)


async def _show_recent(sb: Switchboard, conv: Conversation, out: TextIO) -> None:
    turns = [t for t in await sb.conversations.recent_turns(conv.id, 20) if t.content]
    out.write(f"Continuing your last thread ({HELP})\n")
    for t in [t for t in turns if t.role in ("user", "assistant")][-6:]:
        who = "you" if t.role == "user" else sb.profile.name.lower()
        out.write(f"{who}> {t.content}\n")
    out.write("\n")


def _local_sender() -> Sender:
    user = getpass.getuser()
    return Sender(id=f"cli:{socket.gethostname()}:{user}", name=_full_name(user) or user)


def _full_name(user: str) -> str | None:
    try:
        import pwd

        return pwd.getpwnam(user).pw_gecos.split(",")[0] or None
    except (ImportError, KeyError):
        return None


def _local_zone() -> str | None:
    """The IANA name of the machine's time zone, when it can be told."""
    if os.environ.get("TZ"):
        return os.environ["TZ"].lstrip(":")
    try:
        target = str(Path("/etc/localtime").resolve())
    except OSError:
        return None
    marker = "/zoneinfo/"
    return target.split(marker, 1)[1] if marker in target else None
