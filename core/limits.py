"""Rate limits per person and per workspace, checked where a message arrives, before it is
recorded: a refused message costs one counter update and is never answered."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

SLOW_DOWN = "You're sending messages faster than I can take them. Please wait a moment."


@dataclass(frozen=True, kw_only=True)
class Admitted:
    pass


@dataclass(frozen=True, kw_only=True)
class Limited:
    """`retry_after`: whole seconds until the limit that refused lets a message through.
    `tell`: the first refusal of this person in this window, so a chat channel answers
    once with a short "slow down" instead of once per message of a flood."""

    scope: Literal["user", "workspace"]
    retry_after: int
    tell: bool


Admission = Admitted | Limited


def workspace_of(sender_id: str) -> str:
    """`slack:T1:U2` → `slack:T1`: the workspace or tenant a channel-scoped id is in."""
    return sender_id.rsplit(":", 1)[0]
