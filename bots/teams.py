"""The Teams channel's configuration, from the settings (MicrosoftAppId and friends), and
its check for `switchboard doctor`."""

from __future__ import annotations

import logging

import aiohttp

from adapters.teams.auth import SigningKeys
from adapters.teams.config import DEFAULT_SERVICE_HOSTS, CloudKeys, TeamsConfig
from adapters.teams.credentials import AppTokens
from bots.settings import Settings
from core.errors import ConfigurationError

log = logging.getLogger(__name__)


def teams_config(settings: Settings) -> TeamsConfig:
    assert settings.microsoft_app_id is not None
    keys = CloudKeys(
        channel_service=settings.teams_channel_service,
        openid_metadata_url=settings.teams_openid_metadata_url,
        token_issuer=settings.teams_token_issuer,
        login_url=settings.teams_login_url,
        oauth_scope=settings.teams_oauth_scope,
        oauth_url=settings.teams_oauth_url,
        validate_authority=settings.teams_validate_authority,
    )
    try:
        cloud = keys.resolve()
    except ValueError as e:
        raise ConfigurationError([f"CHANNEL_SERVICE: {e}"]) from None
    password = settings.microsoft_app_password
    return TeamsConfig(
        app_id=settings.microsoft_app_id,
        app_password=password.get_secret_value() if password else None,
        app_type=settings.microsoft_app_type,
        tenant_id=settings.microsoft_app_tenant_id,
        cloud=cloud,
        allowed_tenants=settings.teams_allowed_tenant_ids,
        service_hosts=settings.teams_service_hosts or DEFAULT_SERVICE_HOSTS,
        bot_name=settings.bot_name,
    )


async def check_teams(settings: Settings) -> str:
    """For `switchboard doctor`: the channel's signing keys load and Azure AD issues
    this app a bot token."""
    config = teams_config(settings)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        keys = await SigningKeys(session, config.cloud.openid_metadata_url).refresh()
    await AppTokens.for_config(config).get(config.cloud.oauth_scope)
    return f", {keys} signing keys, bot token issued"
