"""The Slack channel's configuration, from the settings."""

from __future__ import annotations

from pydantic import SecretStr

from adapters.slack.config import SlackConfig
from bots.settings import Settings


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
