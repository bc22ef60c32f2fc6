"""What the Slack channel is configured with (built by `bots/` from the settings)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, kw_only=True, slots=True)
class SlackConfig:
    signing_secret: str | None
    bot_token: str | None = None
    app_token: str | None = None
    api_url: str = "https://slack.com/api/"
    client_id: str | None = None
    client_secret: str | None = None
    allowed_channels: frozenset[str] = frozenset()
    allowed_users: frozenset[str] = frozenset()
    answer_bots: bool = False
    bot_name: str = "Switchboard"

    @property
    def oauth(self) -> bool:
        return self.client_id is not None

    @property
    def authorize_url(self) -> str:
        # GovSlack and other hosts serve OAuth next to their Web API.
        return self.api_url.rstrip("/").removesuffix("/api") + "/oauth/v2/authorize"


BOT_SCOPES = (
    "app_mentions:read", "assistant:write", "channels:history", "channels:read", "chat:write",
    "commands", "groups:history", "groups:read", "im:history", "im:read", "im:write",
    "usergroups:read", "users:read", "users:read.email",
)
