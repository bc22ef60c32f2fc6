"""Notices into a Slack thread on the bot's own initiative (a ticket's status changed),
addressed to the person they are for."""

from __future__ import annotations

from adapters.slack.clients import SlackClients, Workspace
from adapters.slack.mrkdwn import to_mrkdwn
from core.messages import ConversationRef, Sender


class SlackNotices:
    def __init__(self, clients: SlackClients) -> None:
        self._clients = clients

    async def __call__(self, where: ConversationRef, text: str, mention: Sender | None) -> None:
        client = await self._clients.for_workspace(Workspace(team_id=where.tenant))
        # The mention goes on after conversion: to_mrkdwn escapes "<".
        who = f"<@{mention.id.rsplit(':', 1)[1]}> " if mention else ""
        await client.chat_postMessage(
            channel=where.conversation, thread_ts=where.thread, text=who + to_mrkdwn(text)
        )
