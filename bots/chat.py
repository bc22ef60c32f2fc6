"""`switchboard chat`: the terminal channel on the same core as every other channel."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TextIO

from adapters.terminal.chat import chat_loop
from bots.bootstrap import bootstrap
from bots.settings import Settings
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
    """`log`: the file this session logs to (from `chat_log`), named at the start."""
    notes = (f"Log: {log}",) if log is not None else ()
    # A Qdrant server is shared: answers here cite the documents there. The embedded shard
    # belongs to one process, and holding it would keep `switchboard serve` from starting.
    shared = settings.qdrant_url is not None
    async with bootstrap(settings, model=model, open_knowledge=shared) as sb:
        await chat_loop(name=sb.profile.name, worker=sb.worker, conversations=sb.conversations,
                        lines=lines, out=out, notes=notes)
