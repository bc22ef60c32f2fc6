"""The Slack channel's configuration, from the settings, and its check for `doctor`."""

from __future__ import annotations

from collections.abc import Awaitable

from pydantic import SecretStr
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncSlackResponse, AsyncWebClient

from adapters.slack.config import SlackConfig
from bots.settings import Settings
from core.errors import ConfigurationError


def slack_config(settings: Settings) -> SlackConfig:
    def secret(value: SecretStr | None) -> str | None:
        return value.get_secret_value() if value is not None else None

    return SlackConfig(
        signing_secret=secret(settings.slack_signing_secret),
        bot_token=secret(settings.slack_bot_token),
        app_token=secret(settings.slack_app_token),
        api_url=settings.slack_api_url,
        client_id=settings.slack_client_id,
        client_secret=secret(settings.slack_client_secret),
        allowed_channels=settings.slack_allowed_channel_ids,
        allowed_users=settings.slack_allowed_user_ids,
        answer_bots=settings.slack_answer_bots,
        bot_name=settings.bot_name,
    )


async def check_slack(settings: Settings) -> str:
    """For `switchboard doctor`: Slack accepts the bot token (`auth.test`: for which
    workspace and bot user) and, for Socket Mode, the app token (`apps.connections.open`,
    which hands out a connection URL and connects nothing). An OAuth app has a token per
    workspace, used as it comes."""
    token = settings.slack_bot_token
    if token is None:
        return f" (OAuth app {settings.slack_client_id}: each workspace's own token)"
    client = AsyncWebClient(token=token.get_secret_value(), base_url=settings.slack_api_url,
                            timeout=10)
    auth = await _ask("bot token", client.auth_test())
    found = (f", workspace {auth.get('team')} ({auth.get('team_id')}), bot "
             f"@{auth.get('user')} ({auth.get('user_id')})")
    app_token = settings.slack_app_token
    if app_token is None:
        return f"{found}, HTTP events"
    await _ask("app token", client.apps_connections_open(app_token=app_token.get_secret_value()))
    return f"{found}, Socket Mode"


async def _ask(what: str, call: Awaitable[AsyncSlackResponse]) -> AsyncSlackResponse:
    try:
        return await call
    except SlackApiError as e:
        error = e.response.get("error") if isinstance(e.response.data, dict) else None
        raise ConfigurationError(
            [f"Slack refused the {what}: {error or e.response.status_code}"]
        ) from None
