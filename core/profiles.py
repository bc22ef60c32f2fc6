"""What we know about a person, filled in by each channel from what it can tell."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, kw_only=True, slots=True)
class Profile:
    """A sender's profile. Fields left None are unknown; `Profile.merged` keeps known
    values when a channel that knows less (a terminal knows no job title) updates it."""

    id: str
    name: str | None = None
    email: str | None = None
    title: str | None = None
    department: str | None = None
    time_zone: str | None = None
    preferences: dict[str, Any] = field(default_factory=dict)

    def merged(self, update: Profile) -> Profile:
        return Profile(
            id=self.id,
            name=update.name or self.name,
            email=update.email or self.email,
            title=update.title or self.title,
            department=update.department or self.department,
            time_zone=update.time_zone or self.time_zone,
            preferences={**self.preferences, **update.preferences},
        )
