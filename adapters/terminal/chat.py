"""`switchboard chat`: the terminal loop. Each line is a message from the person at the
keyboard, accepted and answered like any other channel's (the same `accept` policy, the
same orchestrator) and shown as it streams: by a worker in this process, or, when an
assistant already runs on the data directory, by that assistant (`relayed`)."""

from __future__ import annotations

import asyncio
import getpass
import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from adapters.terminal.replier import Screen, screen_for
from core.inbox import Acceptance, Recorded, Requeued
from core.messages import ConversationRef, InboundMessage, Sender
from core.ports import ConversationStore, Inbox, Replier
from core.relay import REPLY_TO, ReplyRelay, pass_on
from core.threads import Conversation

log = logging.getLogger(__name__)

CHANNEL = "cli"
HELP = (
    "Type a message and press Enter. /new starts a new thread, /ticket help shows the "
    "ticket commands, /quit leaves."
)


Answer = Callable[[Acceptance, Replier], Awaitable[object]]
"""Records one message and answers it to the replier (the screen)."""


def relayed(*, inbox: Inbox, relay: ReplyRelay, work_added: Callable[[], None]) -> Answer:
    """Messages answered by the assistant already running: recorded here, answered by its
    worker (same core, same index), the answer relayed back as it is written."""

    async def answer(acceptance: Acceptance, replier: Replier) -> None:
        message = acceptance.message
        message = replace(message, channel_data={**message.channel_data,
                                                 REPLY_TO: relay.address})
        async with relay.waiting(message.id) as events:
            outcome = await inbox.accept(replace(acceptance, message=message))
            if isinstance(outcome, Recorded | Requeued):
                work_added()
                await pass_on(events, replier)

    return answer


async def chat_loop(
    *,
    name: str,
    answer: Answer,
    conversations: ConversationStore,
    lines: TextIO,
    out: TextIO,
    sender: Sender | None = None,
    notes: tuple[str, ...] = (),
) -> None:
    """`notes`: lines about the session itself (where its log goes), shown under the help."""
    sender = sender or local_sender()
    screen = screen_for(out)
    conv = await conversations.latest(channel=CHANNEL, owner=sender.id)
    if conv is None:
        ref = _new_thread()
        screen.note(f"{name} — {HELP}")
    else:
        ref = conv.ref
        log.info("terminal chat: continuing thread %s", ref.conversation)
        screen.note(f"Continuing your last thread ({HELP})")
    for note in notes:
        screen.note(note)
    screen.note("")
    if conv is not None:
        await _show_recent(conversations, conv, name, screen)
    try:
        await _converse(ref, sender=sender, answer=answer, lines=lines, screen=screen)
    finally:
        # Ctrl-C mid-answer: a live region left running would keep the cursor hidden.
        screen.close()


async def _converse(
    ref: ConversationRef, *, sender: Sender, answer: Answer, lines: TextIO, screen: Screen
) -> None:
    interactive = lines.isatty()
    while True:
        if interactive:
            screen.prompt("you> ")
        line = await asyncio.to_thread(lines.readline)
        if not line:
            if interactive:
                screen.note("")  # Ctrl-D: the shell's prompt starts on a line of its own
            break
        text = line.strip()
        if text in ("/quit", "/exit"):
            break
        if text == "/new":
            ref = _new_thread()
            screen.note("Started a new thread.\n")
            continue
        if text in ("/help", "?"):
            screen.note(HELP)
            continue
        if not text:
            continue
        message = InboundMessage(
            id=uuid.uuid4().hex, conversation=ref, sender=sender, text=text,
            sent_at=datetime.now(UTC), is_direct=True,
        )
        # `/ticket …` is answered by the ticket service, anything else by the model: the
        # orchestrator decides, as for every channel.
        await answer(Acceptance(message=message), screen)


def _new_thread() -> ConversationRef:
    ref = ConversationRef(channel=CHANNEL, tenant=socket.gethostname(),
                          conversation=uuid.uuid4().hex)
    log.info("terminal chat: new thread %s", ref.conversation)
    return ref


async def _show_recent(
    conversations: ConversationStore, conv: Conversation, name: str, screen: Screen
) -> None:
    turns = [t for t in await conversations.recent_turns(conv.id, 20) if t.content]
    for t in [t for t in turns if t.role in ("user", "assistant")][-6:]:
        screen.turn("you" if t.role == "user" else name.lower(), t.content)
    screen.note("")


def local_sender() -> Sender:
    """The person at this keyboard: the OS user, with the machine's time zone."""
    user = getpass.getuser()
    return Sender(id=f"{CHANNEL}:{socket.gethostname()}:{user}", name=_full_name(user) or user,
                  time_zone=_local_zone())


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
