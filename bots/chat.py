"""`switchboard chat`: the terminal channel on the same core as every other channel."""

from __future__ import annotations

import sys
from typing import TextIO

from adapters.terminal.chat import chat_loop
from bots.bootstrap import bootstrap
from bots.settings import Settings
from core.ports import ChatModel


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
        await chat_loop(name=sb.profile.name, worker=sb.worker, conversations=sb.conversations,
                        lines=lines, out=out)
