"""Notices into a Teams conversation (or channel thread) on the bot's own initiative (a
ticket's status changed), through the reference the bot kept when it last heard from
there."""

from __future__ import annotations

import logging

from adapters.teams.render import to_teams_markdown
from adapters.teams.replier import TeamsRepliers, text_activity
from core.messages import ConversationRef, Sender
from core.ports import ConversationReferences

log = logging.getLogger(__name__)


class TeamsNotices:
    def __init__(self, repliers: TeamsRepliers, references: ConversationReferences) -> None:
        self._repliers = repliers
        self._references = references

    async def __call__(self, where: ConversationRef, text: str, mention: Sender | None) -> None:
        reference = await self._references.get(where)
        if reference is None:
            log.warning("no way to reach Teams conversation %s for a notice", where.conversation)
            return
        await self._repliers.sender_for(reference)(text_activity(to_teams_markdown(text)))
