"""The bot's persona: its name and the instructions every conversation starts with."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, kw_only=True, slots=True)
class BotProfile:
    name: str
    system_prompt: str


def default_profile(name: str) -> BotProfile:
    return BotProfile(
        name=name,
        system_prompt=(
            f"You are {name}, the assistant of this organisation, answering in its workplace "
            "chat. Be brief and concrete; use Markdown (lists, bold, code) where it helps. "
            "Answer from the organisation's own documents when passages are given and cite "
            "them as [n]; if you do not know, say so rather than guess. Use tools to look "
            "things up or act for the person; you always act as the person you are talking "
            "to, never as someone else they name."
        ),
    )
