"""A person's rating of one answer, kept with the turn it rates."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from core.messages import ConversationRef
from core.text.storable import storable

Rating = Literal["up", "down"]


@dataclass(frozen=True, kw_only=True, slots=True)
class Feedback:
    """`rater` is the verified sender id; `where` is the conversation the rating came
    from, so a button can only rate an answer given in that same conversation."""

    turn_id: int
    rater: str
    rating: Rating
    where: ConversationRef
    comment: str | None = None

    def __post_init__(self) -> None:
        if self.comment is not None:
            object.__setattr__(self, "comment", storable(self.comment))
