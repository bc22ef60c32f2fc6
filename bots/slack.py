"""The Slack channel's configuration, from the settings, and its check for `doctor`."""

from __future__ import annotations

from pydantic import SecretStr
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

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
    """For `switchboard doctor`: Slack accepts the bot token (`auth.test`), and for which
    workspace and bot user. An OAuth app has a token per workspace, used as it comes."""
    token = settings.slack_bot_token
    if token is None:
        return f" (OAuth app {settings.slack_client_id}: each workspace's own token)"
    client = AsyncWebClient(token=token.get_secret_value(), base_url=settings.slack_api_url,
                            timeout=10)
    try:
        auth = await client.auth_test()
    except SlackApiError as e:
        error = e.response.get("error") if isinstance(e.response.data, dict) else None
        raise ConfigurationError(
            [f"Slack refused the bot token: {error or e.response.status_code}"]
        ) from None
    mode = "Socket Mode" if settings.slack_app_token is not None else "HTTP events"
    return (f", workspace {auth.get('team')} ({auth.get('team_id')}), bot "
            f"@{auth.get('user')} ({auth.get('user_id')}), {mode}")
