"""Teams settings and the Bot Framework endpoints they resolve to.

The cloud keys are botbuilder's own (`TO_BOT_FROM_CHANNEL_OPENID_METADATA_URL`, …): unset
ones take the public cloud's values, or the US Government cloud's when `CHANNEL_SERVICE`
names it, so government clouds and private deployments need only the environment.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from botframework.connector.auth import AuthenticationConstants, GovernmentConstants

AppType = Literal["SingleTenant", "MultiTenant", "UserAssignedMSI"]

# Hosts of Microsoft's Bot Connector for Teams (public, GCC, GCC High, DoD) and of the
# Bot Framework channels. A leading "*." matches any subdomain.
DEFAULT_SERVICE_HOSTS = (
    "smba.trafficmanager.net",
    "smba.infra.gcc.teams.microsoft.com",
    "smba.infra.gov.teams.microsoft.us",
    "smba.infra.dod.teams.microsoft.us",
    "*.botframework.com",
    "*.botframework.azure.us",
)


@dataclass(frozen=True, kw_only=True, slots=True)
class CloudEndpoints:
    """Where tokens come from and who issues them, for one cloud."""

    openid_metadata_url: str
    token_issuer: str
    login_url: str
    oauth_scope: str
    oauth_url: str
    validate_authority: bool


@dataclass(frozen=True, kw_only=True, slots=True)
class CloudKeys:
    """The raw values of botbuilder's cloud keys, None when unset."""

    channel_service: str | None = None
    openid_metadata_url: str | None = None
    token_issuer: str | None = None
    login_url: str | None = None
    oauth_scope: str | None = None
    oauth_url: str | None = None
    validate_authority: bool | None = None

    def resolve(self) -> CloudEndpoints:
        gov = self.channel_service == GovernmentConstants.CHANNEL_SERVICE
        if self.channel_service and not gov and not self._complete():
            raise ValueError(
                f"CHANNEL_SERVICE {self.channel_service!r} is not a known cloud: set every "
                "TO_BOT_FROM_CHANNEL_* and TO_CHANNEL_FROM_BOT_* key for a private cloud"
            )
        base = GovernmentConstants if gov else AuthenticationConstants
        return CloudEndpoints(
            openid_metadata_url=self.openid_metadata_url
            or base.TO_BOT_FROM_CHANNEL_OPENID_METADATA_URL,
            token_issuer=self.token_issuer or base.TO_BOT_FROM_CHANNEL_TOKEN_ISSUER,
            # The constants' own TO_CHANNEL_FROM_BOT_LOGIN_URL is deprecated (a token URL).
            login_url=self.login_url
            or base.TO_CHANNEL_FROM_BOT_LOGIN_URL_PREFIX + base.DEFAULT_CHANNEL_AUTH_TENANT,
            oauth_scope=self.oauth_scope or base.TO_CHANNEL_FROM_BOT_OAUTH_SCOPE,
            oauth_url=self.oauth_url
            or (GovernmentConstants.OAUTH_URL_GOV if gov else AuthenticationConstants.OAUTH_URL),
            validate_authority=True if self.validate_authority is None else self.validate_authority,
        )

    def _complete(self) -> bool:
        return all((self.openid_metadata_url, self.token_issuer, self.login_url, self.oauth_scope))


@dataclass(frozen=True, kw_only=True, slots=True)
class TeamsConfig:
    app_id: str
    app_password: str | None
    app_type: AppType
    tenant_id: str | None
    cloud: CloudEndpoints
    allowed_tenants: frozenset[str] = frozenset()
    service_hosts: tuple[str, ...] = DEFAULT_SERVICE_HOSTS
    bot_name: str = "Switchboard"

    @property
    def authority(self) -> str:
        """The MSAL authority for bot → channel tokens: a single-tenant app signs in to its
        own tenant on Microsoft's login hosts; a private login URL is used as it is."""
        login = self.cloud.login_url.rstrip("/")
        if self.app_type != "SingleTenant" or not self.tenant_id:
            return login
        for prefix in (
            AuthenticationConstants.TO_CHANNEL_FROM_BOT_LOGIN_URL_PREFIX,
            GovernmentConstants.TO_CHANNEL_FROM_BOT_LOGIN_URL_PREFIX,
        ):
            if login.lower().startswith(prefix):
                return prefix + self.tenant_id
        return login
