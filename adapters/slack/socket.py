"""Socket Mode: the same Bolt app over Slack's websocket, for workspaces without a
public URL. Acknowledgements go back on the socket once the listener has recorded the
message, exactly as over HTTP."""

from __future__ import annotations

import logging

from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

from adapters.slack.app import SlackChannel

log = logging.getLogger(__name__)


class SlackSocket:
    def __init__(self, channel: SlackChannel, app_token: str) -> None:
        self._handler = AsyncSocketModeHandler(
            channel.app, app_token, web_client=channel.app.client
        )

    async def start(self) -> None:
        await self._handler.connect_async()
        log.info("connected to Slack over Socket Mode")

    async def stop(self) -> None:
        await self._handler.close_async()
