"""Socket Mode: the same Bolt app over Slack's websocket, for workspaces without a
public URL. Acknowledgements go back on the socket once the listener has recorded the
message, exactly as over HTTP."""

from __future__ import annotations

import logging

from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_sdk.socket_mode.async_client import AsyncBaseSocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse

from adapters.slack.app import SlackChannel
from adapters.slack.payloads import usable

log = logging.getLogger(__name__)


class _CheckedHandler(AsyncSocketModeHandler):  # type: ignore[misc]
    """Payloads checked as over HTTP (`payloads`) before Bolt reads them: one with
    unusable fields is acknowledged (Slack would send it again) and ignored."""

    async def handle(self, client: AsyncBaseSocketModeClient, req: SocketModeRequest) -> None:
        if usable(req.payload):
            await super().handle(client, req)
        else:
            await client.send_socket_mode_response(SocketModeResponse(envelope_id=req.envelope_id))


class SlackSocket:
    def __init__(self, channel: SlackChannel, app_token: str) -> None:
        self._handler = _CheckedHandler(
            channel.app, app_token, web_client=channel.app.client
        )

    async def start(self) -> None:
        await self._handler.connect_async()
        log.info("connected to Slack over Socket Mode")

    async def stop(self) -> None:
        await self._handler.close_async()
