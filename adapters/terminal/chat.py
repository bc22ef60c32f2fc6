"""`switchboard chat`: the terminal loop. Each line is a message from the person at the
keyboard, accepted and answered like any other channel's (the same `accept` policy, the
same orchestrator) and shown as it streams: by a worker in this process, or, when an
assistant already runs on the data directory, by that assistant (`relayed`).

Ctrl-C while an answer is written stops that answer (as a Stop button would: what was
written is kept, marked stopped), not the program; at the prompt it leaves, as /quit."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import getpass
import logging
import os
import signal
import socket
import threading
import uuid
from collections.abc import Awaitable, Callable, Iterator
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
    "Type a message and press Enter; Ctrl-C stops an answer. /new starts a new thread, "
    "/threads lists yours (/open N goes back to one), /ticket help shows the ticket "
    "commands, /quit leaves."
)
THREADS_SHOWN = 10


Answer = Callable[[Acceptance, Replier], Awaitable[object]]
"""Records one message and answers it to the replier (the screen)."""
Stop = Callable[[InboundMessage], Awaitable[object]]
"""Stops the answer to one message (Ctrl-C)."""


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
    stop: Stop | None = None,
) -> None:
    """`notes`: lines about the session itself (where its log goes), shown under the help.
    `stop`: how Ctrl-C stops an answer (without it, Ctrl-C leaves as it always does)."""
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
        await _converse(ref, sender=sender, answer=answer, lines=lines, screen=screen,
                        stop=stop, conversations=conversations, name=name)
    finally:
        # Ctrl-C mid-answer: a live region left running would keep the cursor hidden.
        screen.close()


async def _converse(
    ref: ConversationRef, *, sender: Sender, answer: Answer, lines: TextIO, screen: Screen,
    stop: Stop | None, conversations: ConversationStore, name: str,
) -> None:
    interactive = lines.isatty()
    listed: list[Conversation] = []
    while True:
        if interactive:
            screen.prompt("you> ")
        line = await _read_line(lines)
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
        if text == "/threads":
            listed = await _list_threads(conversations, sender, screen)
            continue
        if text.startswith("/open"):
            chosen = _chosen(text, listed)
            if chosen is None:
                screen.note("Say which: /threads lists them, then /open N.\n")
                continue
            ref = chosen.ref
            await _show_recent(conversations, chosen, name, screen)
            continue
        if not text:
            continue
        message = InboundMessage(
            id=uuid.uuid4().hex, conversation=ref, sender=sender, text=text,
            sent_at=datetime.now(UTC), is_direct=True,
        )
        # `/ticket …` is answered by the ticket service, anything else by the model: the
        # orchestrator decides, as for every channel.
        answering = answer(Acceptance(message=message), screen)
        if stop is None:
            await answering
            continue
        stops: list[asyncio.Future[object]] = []  # a stop is one quick write: awaited below
        with _ctrl_c(functools.partial(_ask_to_stop, stop, message, stops)):
            await answering
        for done in await asyncio.gather(*stops, return_exceptions=True):
            if isinstance(done, Exception):
                log.warning("could not stop the answer (%s)", type(done).__name__)


async def _read_line(lines: TextIO) -> str:
    """The next line, read on a daemon thread: Ctrl-C at the prompt ends the program at
    once, where a pool thread still blocked in `readline` would hold up its exit."""
    loop = asyncio.get_running_loop()
    read: asyncio.Future[str] = loop.create_future()

    def run() -> None:
        try:
            line = lines.readline()
        except Exception as e:  # (a closed stdin) handed to the waiting task
            loop.call_soon_threadsafe(_settle, read, None, e)
        else:
            loop.call_soon_threadsafe(_settle, read, line, None)

    threading.Thread(target=run, name="chat-input", daemon=True).start()
    return await read


def _settle(read: asyncio.Future[str], line: str | None, error: Exception | None) -> None:
    if read.done():  # the waiting task was cancelled (Ctrl-C)
        return
    if error is not None:
        read.set_exception(error)
    else:
        read.set_result(line or "")


def _ask_to_stop(stop: Stop, message: InboundMessage, stops: list[asyncio.Future[object]]) -> None:
    stops.append(asyncio.ensure_future(stop(message)))


@contextlib.contextmanager
def _ctrl_c(then: Callable[[], object]) -> Iterator[None]:
    """While inside: Ctrl-C (SIGINT) calls `then` instead of interrupting the program.
    Only where signals can be caught (the main thread of a program with a loop)."""
    loop = asyncio.get_running_loop()
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGINT)
    try:
        loop.add_signal_handler(signal.SIGINT, then)
    except (NotImplementedError, RuntimeError, ValueError):
        # The loop cannot take signal handlers (Windows' proactor): Ctrl-C keeps its
        # usual effect there, and leaves.
        yield
        return
    try:
        yield
    finally:
        loop.remove_signal_handler(signal.SIGINT)
        signal.signal(signal.SIGINT, previous)


async def _list_threads(
    conversations: ConversationStore, sender: Sender, screen: Screen
) -> list[Conversation]:
    found = await conversations.owned(channel=CHANNEL, owner=sender.id, limit=THREADS_SHOWN)
    threads = [c for c in (await asyncio.gather(*(conversations.get(s.id) for s in found)))
               if c is not None]
    if not found:
        screen.note("No threads yet.\n")
    for n, summary in enumerate(found, start=1):
        screen.note(f"{n:>2}. {summary.title or '(empty)'}  ({summary.updated_at:%Y-%m-%d %H:%M})")
    screen.note("")
    return threads


def _chosen(command: str, listed: list[Conversation]) -> Conversation | None:
    _, _, number = command.partition(" ")
    if not number.strip().isdigit() or not 1 <= int(number) <= len(listed):
        return None
    return listed[int(number) - 1]


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
