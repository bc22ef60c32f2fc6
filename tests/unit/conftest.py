from __future__ import annotations

import pytest

from core.knowledge import Audience, PassageBook
from core.messages import ConversationRef, Sender
from core.profiles import Profile
from core.tools.registry import ToolContext, ToolServices


class InMemoryProfileStore:
    def __init__(self) -> None:
        self.profiles: dict[str, Profile] = {}

    async def get(self, sender_id: str) -> Profile | None:
        return self.profiles.get(sender_id)

    async def upsert(self, profile: Profile) -> Profile:
        stored = self.profiles.get(profile.id)
        self.profiles[profile.id] = stored.merged(profile) if stored else profile
        return self.profiles[profile.id]


@pytest.fixture
def tool_ctx() -> ToolContext:
    return ToolContext(
        sender=Sender(id="web:local:ada", name="Ada"),
        conversation=ConversationRef(channel="web", tenant="local", conversation="c1"),
        message_id="m1",
        services=ToolServices(profiles=InMemoryProfileStore()),
        audience=Audience(kind="person", principals=frozenset({"web:local:ada"})),
        sources=PassageBook(),
    )
