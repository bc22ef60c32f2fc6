"""Settings: read once from the environment (and an optional `.env`) at start-up.

Every problem is reported at once, and secrets never appear in `repr`, logs or errors.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from limits import RateLimitItem, parse
from pydantic import (
    AliasChoices,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from adapters.sql.engine import DRIVERS
from core.errors import ConfigurationError
from core.sources import DeclaredSource, parse_sources

DEFAULT_MODEL = "gpt-4.1-mini"


def default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "switchboard"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        frozen=True,
        populate_by_name=True,
    )

    data_dir: Path = Field(default_factory=default_data_dir, validation_alias="DATA_DIR")
    database_url: SecretStr | None = Field(None, validation_alias="DATABASE_URL")
    qdrant_url: str | None = Field(None, validation_alias="QDRANT_URL")
    qdrant_api_key: SecretStr | None = Field(None, validation_alias="QDRANT_API_KEY")

    openai_api_key: SecretStr | None = Field(None, validation_alias="OPENAI_API_KEY")
    openai_base_url: str | None = Field(None, validation_alias="OPENAI_BASE_URL")
    model: str = Field(DEFAULT_MODEL, validation_alias="SWITCHBOARD_MODEL")
    # Per model request: connecting, and each wait for the next part of the stream.
    model_timeout: float = Field(30.0, gt=0, validation_alias="SWITCHBOARD_MODEL_TIMEOUT")
    model_retries: int = Field(2, ge=0, le=10, validation_alias="SWITCHBOARD_MODEL_RETRIES")
    # One answer, whole: context, every model round and retry, the tools. A model that
    # never answers costs at most this, then the person gets an apology.
    answer_deadline: float = Field(
        60.0, gt=0, le=3600, validation_alias="SWITCHBOARD_ANSWER_DEADLINE"
    )
    # The model provider's limit: requests per minute from one worker (unset: none).
    model_rpm: int | None = Field(None, ge=1, validation_alias="SWITCHBOARD_MODEL_RPM")
    context_tokens: int = Field(8000, ge=500, validation_alias="SWITCHBOARD_CONTEXT_TOKENS")
    max_tool_rounds: int = Field(5, ge=1, le=20, validation_alias="SWITCHBOARD_MAX_TOOL_ROUNDS")
    embedding_model: str | None = Field(None, validation_alias="SWITCHBOARD_EMBEDDING_MODEL")
    # The model's vector size; asked of the model at start-up when unset.
    embedding_dimensions: int | None = Field(
        None, ge=1, le=65536, validation_alias="SWITCHBOARD_EMBEDDING_DIMENSIONS"
    )
    # The documentation about Switchboard itself, indexed at start-up (public).
    bundled_docs: bool = Field(True, validation_alias="SWITCHBOARD_BUNDLED_DOCS")
    # Folders kept in sync by the process that owns the index: `PATH[=INTERVAL]`, comma
    # separated (`/srv/handbook=10m,/mnt/wiki=1h`); more with `switchboard source add`.
    sources: str = Field("", validation_alias="SWITCHBOARD_SOURCES")

    host: str = Field("127.0.0.1", validation_alias=AliasChoices("HOST", "SWITCHBOARD_HOST"))
    port: int = Field(3978, ge=1, le=65535, validation_alias="PORT")
    max_body_bytes: int = Field(1_048_576, ge=1024, validation_alias="SWITCHBOARD_MAX_BODY_BYTES")
    api_keys: SecretStr | None = Field(None, validation_alias="SWITCHBOARD_API_KEYS")
    # API key users who administer the assistant: add documents through the API.
    admins: str = Field("", validation_alias="SWITCHBOARD_ADMINS")
    # The most one upload of documents may carry (POST /api/v1/ingest/upload).
    max_upload_bytes: int = Field(
        100_000_000, ge=1024, validation_alias="SWITCHBOARD_MAX_UPLOAD_BYTES"
    )
    # Messages one person, and one workspace or tenant, may send: `20/minute`, `200/hour`,
    # `5 per 10 seconds` (the `limits` library's notation). Unset: no limit.
    rate_limit_user: str | None = Field(None, validation_alias="SWITCHBOARD_RATE_LIMIT_USER")
    rate_limit_workspace: str | None = Field(
        None, validation_alias="SWITCHBOARD_RATE_LIMIT_WORKSPACE"
    )
    # Turns answered at once per worker process. A turn is almost all waiting on the
    # model, so this is sized for waiting work, not CPU (SWITCHBOARD_WORKERS: old name).
    concurrency: int = Field(
        256, ge=1, le=10_000,
        validation_alias=AliasChoices("SWITCHBOARD_CONCURRENCY", "SWITCHBOARD_WORKERS"),
    )
    # How long a worker holds a message before another may take it over (renewed every
    # third of it while answering): how soon a crashed worker's messages are answered.
    lease_seconds: int = Field(60, ge=3, le=3600, validation_alias="SWITCHBOARD_LEASE_SECONDS")
    # On SIGTERM, how long answers in progress may take to finish (within common platform
    # stop timeouts: Kubernetes and Heroku allow 30 s) before they go back to the inbox.
    shutdown_grace: float = Field(
        25.0, ge=0, le=3600, validation_alias="SWITCHBOARD_SHUTDOWN_GRACE"
    )
    bot_name: str = Field("Switchboard", min_length=1, validation_alias="SWITCHBOARD_BOT_NAME")
    # Conversations, turns, feedback and finished inbox items older than this many days
    # are purged hourly (by the answering process) and by `switchboard purge`. Unset: kept.
    retention_days: int | None = Field(
        None, ge=1, le=36_500, validation_alias="SWITCHBOARD_RETENTION_DAYS"
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", validation_alias="SWITCHBOARD_LOG_LEVEL"
    )
    # text: one readable line per record; json: one JSON object per line, with the
    # message's channel, conversation, inbox item and message ids as fields.
    log_format: Literal["text", "json"] = Field(
        "text", validation_alias=AliasChoices("SWITCHBOARD_LOG_FORMAT", "LOG_FORMAT")
    )
    # Message text and prompts reach the log only when asked for (debugging a deployment
    # that is yours to read): the SDKs' request and response bodies, at DEBUG.
    log_content: bool = Field(
        False, validation_alias=AliasChoices("SWITCHBOARD_LOG_CONTENT", "LOG_CONTENT")
    )
    # /metrics on a port of its own (a `switchboard worker` has no other; web roles also
    # keep it on their main port). Unset: no separate listener.
    metrics_port: int | None = Field(
        None, ge=1, le=65535, validation_alias="SWITCHBOARD_METRICS_PORT"
    )

    # Ids, emails or group names of the support agents, who see and change every ticket.
    ticket_agents: str = Field("", validation_alias="SWITCHBOARD_TICKET_AGENTS")
    ticket_webhook_url: str | None = Field(None, validation_alias="SWITCHBOARD_TICKET_WEBHOOK_URL")
    ticket_webhook_secret: SecretStr | None = Field(
        None, validation_alias="SWITCHBOARD_TICKET_WEBHOOK_SECRET"
    )

    slack_bot_token: SecretStr | None = Field(None, validation_alias="SLACK_BOT_TOKEN")
    slack_signing_secret: SecretStr | None = Field(None, validation_alias="SLACK_SIGNING_SECRET")
    slack_app_token: SecretStr | None = Field(None, validation_alias="SLACK_APP_TOKEN")
    slack_api_url: str = Field("https://slack.com/api/", validation_alias="SLACK_API_URL")
    slack_client_id: str | None = Field(None, validation_alias="SLACK_CLIENT_ID")
    slack_client_secret: SecretStr | None = Field(None, validation_alias="SLACK_CLIENT_SECRET")
    slack_allowed_channels: str = Field("", validation_alias="SLACK_ALLOWED_CHANNELS")
    slack_allowed_users: str = Field("", validation_alias="SLACK_ALLOWED_USERS")
    slack_answer_bots: bool = Field(False, validation_alias="SLACK_ANSWER_BOTS")

    # Teams: botbuilder's own names (and the upper-case spelling) so an existing bot's
    # environment works unchanged.
    microsoft_app_id: str | None = Field(
        None, validation_alias=AliasChoices("MicrosoftAppId", "MICROSOFT_APP_ID")
    )
    microsoft_app_password: SecretStr | None = Field(
        None, validation_alias=AliasChoices("MicrosoftAppPassword", "MICROSOFT_APP_PASSWORD")
    )
    microsoft_app_type: Literal["SingleTenant", "MultiTenant", "UserAssignedMSI"] = Field(
        "SingleTenant", validation_alias=AliasChoices("MicrosoftAppType", "MICROSOFT_APP_TYPE")
    )
    microsoft_app_tenant_id: str | None = Field(
        None, validation_alias=AliasChoices("MicrosoftAppTenantId", "MICROSOFT_APP_TENANT_ID")
    )
    teams_openid_metadata_url: str | None = Field(
        None, validation_alias="TO_BOT_FROM_CHANNEL_OPENID_METADATA_URL"
    )
    teams_token_issuer: str | None = Field(
        None, validation_alias="TO_BOT_FROM_CHANNEL_TOKEN_ISSUER"
    )
    teams_login_url: str | None = Field(None, validation_alias="TO_CHANNEL_FROM_BOT_LOGIN_URL")
    teams_oauth_scope: str | None = Field(None, validation_alias="TO_CHANNEL_FROM_BOT_OAUTH_SCOPE")
    teams_channel_service: str | None = Field(None, validation_alias="CHANNEL_SERVICE")
    teams_validate_authority: bool | None = Field(None, validation_alias="VALIDATE_AUTHORITY")
    teams_oauth_url: str | None = Field(None, validation_alias="OAUTH_URL")
    teams_allowed_tenants: str = Field("", validation_alias="TEAMS_ALLOWED_TENANTS")
    teams_service_url_allowlist: str | None = Field(
        None, validation_alias="TEAMS_SERVICE_URL_ALLOWLIST"
    )

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            scheme = value.get_secret_value().split(":", 1)[0]
            if scheme not in DRIVERS:
                raise ValueError(
                    "use sqlite+aiosqlite:///path/to/file.db or postgresql+asyncpg://user@host/db"
                )
        return value

    @field_validator(
        "openai_base_url", "qdrant_url", "slack_api_url", "teams_openid_metadata_url",
        "teams_login_url", "teams_oauth_url", "ticket_webhook_url",
    )
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None:
            parts = urlsplit(value)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise ValueError("must be an http:// or https:// URL")
        return value

    @field_validator("api_keys")
    @classmethod
    def _api_keys_format(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            parse_api_keys(value.get_secret_value())
        return value

    @field_validator("sources")
    @classmethod
    def _sources_format(cls, value: str) -> str:
        parse_sources(value)
        return value

    @field_validator("rate_limit_user", "rate_limit_workspace")
    @classmethod
    def _rate_limit(cls, value: str | None) -> str | None:
        if value is not None:
            parse_rate_limit(value)
        return value

    @field_validator("slack_bot_token", "slack_app_token")
    @classmethod
    def _slack_token_kind(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        prefix = "xoxb-" if info.field_name == "slack_bot_token" else "xapp-"
        if value is not None and not value.get_secret_value().startswith(prefix):
            raise ValueError(f"must be a Slack token starting with {prefix}")
        return value

    @field_validator("log_format", mode="before")
    @classmethod
    def _log_format_any_case(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _qdrant_key_needs_url(self) -> Settings:
        if self.qdrant_api_key is not None and self.qdrant_url is None:
            raise ValueError("QDRANT_API_KEY is set but QDRANT_URL is not")
        return self

    @model_validator(mode="after")
    def _slack_complete(self) -> Settings:
        if (self.slack_client_id is None) != (self.slack_client_secret is None):
            raise ValueError("set both SLACK_CLIENT_ID and SLACK_CLIENT_SECRET, or neither")
        if self.slack_bot_token is not None and self.slack_client_id is not None:
            raise ValueError(
                "set SLACK_BOT_TOKEN (one workspace) or SLACK_CLIENT_ID/SLACK_CLIENT_SECRET "
                "(OAuth, many workspaces), not both"
            )
        if self.slack_enabled and self.slack_bot_token is None and self.slack_client_id is None:
            raise ValueError("SLACK_APP_TOKEN is set but SLACK_BOT_TOKEN is not")
        if self.slack_enabled and self.slack_signing_secret is None and (
            self.slack_app_token is None or self.slack_client_id is not None
        ):
            raise ValueError(
                "SLACK_SIGNING_SECRET is required to verify requests from Slack "
                "(only a Socket Mode app with SLACK_APP_TOKEN can do without it)"
            )
        return self

    @model_validator(mode="after")
    def _teams_complete(self) -> Settings:
        if not self.teams_enabled:
            return self
        if self.microsoft_app_type != "UserAssignedMSI" and self.microsoft_app_password is None:
            raise ValueError("MicrosoftAppPassword is required with MicrosoftAppId")
        if self.microsoft_app_type == "SingleTenant" and not self.microsoft_app_tenant_id:
            raise ValueError("MicrosoftAppTenantId is required for a SingleTenant app")
        return self

    # ----- derived values -----

    @property
    def sqlalchemy_url(self) -> str:
        """The database URL; the engine maps plain `postgresql://` to the asyncpg driver."""
        if self.database_url is None:
            return f"sqlite+aiosqlite:///{self.data_dir / 'switchboard.db'}"
        return self.database_url.get_secret_value()

    @property
    def database_is_embedded(self) -> bool:
        return self.sqlalchemy_url.startswith("sqlite")

    @property
    def qdrant_path(self) -> Path:
        return self.data_dir / "qdrant"

    @property
    def model_configured(self) -> bool:
        return self.openai_api_key is not None or self.openai_base_url is not None

    @property
    def api_key_users(self) -> dict[str, str]:
        """API key → the user it authenticates (`SWITCHBOARD_API_KEYS=alice:key1,bob:key2`)."""
        return parse_api_keys(self.api_keys.get_secret_value()) if self.api_keys else {}

    @property
    def user_rate_limit(self) -> RateLimitItem | None:
        return parse_rate_limit(self.rate_limit_user) if self.rate_limit_user else None

    @property
    def workspace_rate_limit(self) -> RateLimitItem | None:
        return parse_rate_limit(self.rate_limit_workspace) if self.rate_limit_workspace else None

    @property
    def declared_sources(self) -> tuple[DeclaredSource, ...]:
        return parse_sources(self.sources)

    @property
    def slack_enabled(self) -> bool:
        tokens = (self.slack_bot_token, self.slack_client_id, self.slack_app_token)
        return any(v is not None for v in tokens)

    @property
    def admin_names(self) -> frozenset[str]:
        return _id_set(self.admins)

    @property
    def ticket_agent_names(self) -> frozenset[str]:
        return _id_set(self.ticket_agents)

    @model_validator(mode="after")
    def _webhook_needs_secret(self) -> Settings:
        if self.ticket_webhook_url is not None and self.ticket_webhook_secret is None:
            raise ValueError(
                "SWITCHBOARD_TICKET_WEBHOOK_URL is set but SWITCHBOARD_TICKET_WEBHOOK_SECRET "
                "is not: webhook deliveries are signed with it"
            )
        return self

    @property
    def teams_enabled(self) -> bool:
        return bool(self.microsoft_app_id)

    @property
    def teams_allowed_tenant_ids(self) -> frozenset[str]:
        return _id_set(self.teams_allowed_tenants)

    @property
    def teams_service_hosts(self) -> tuple[str, ...] | None:
        """None: Microsoft's connector hosts (the adapter's default)."""
        if self.teams_service_url_allowlist is None:
            return None
        return tuple(sorted(_id_set(self.teams_service_url_allowlist)))

    @property
    def slack_allowed_channel_ids(self) -> frozenset[str]:
        return _id_set(self.slack_allowed_channels)

    @property
    def slack_allowed_user_ids(self) -> frozenset[str]:
        return _id_set(self.slack_allowed_users)

    def secrets(self) -> list[str]:
        """Every secret value, for the log filter that masks them."""
        values = [
            s.get_secret_value()
            for s in (
                self.openai_api_key, self.qdrant_api_key, self.slack_bot_token,
                self.slack_signing_secret, self.slack_app_token, self.slack_client_secret,
                self.microsoft_app_password, self.ticket_webhook_secret,
            )
            if s is not None
        ]
        values += list(self.api_key_users)
        password = urlsplit(self.sqlalchemy_url).password
        if password:
            values.append(password)
        return [v for v in values if len(v) >= 4]

    def describe_database(self) -> str:
        parts = urlsplit(self.sqlalchemy_url)
        if parts.password:
            netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
            return parts._replace(netloc=netloc).geturl()
        return self.sqlalchemy_url


def _id_set(raw: str) -> frozenset[str]:
    return frozenset(filter(None, (part.strip() for part in raw.split(","))))


def parse_api_keys(raw: str) -> dict[str, str]:
    """Every problem in one message, naming entries by position and user, never by key:
    a key given twice would let one person act as another."""
    keys: dict[str, str] = {}
    problems = []
    for number, entry in enumerate(filter(None, (e.strip() for e in raw.split(","))), 1):
        user, sep, key = (part.strip() for part in entry.partition(":"))
        if not sep or not user or len(key) < 16:
            problems.append(f"entry {number} is not user:key with a key of 16+ characters")
        elif key in keys:
            problems.append(f"entry {number} ({user}) repeats the key of {keys[key]}: "
                            "give every user a key of their own")
        else:
            keys[key] = user
    if problems:
        raise ValueError("; ".join(problems) + " (use user:key pairs separated by commas)")
    return keys


def parse_rate_limit(raw: str) -> RateLimitItem:
    try:
        return parse(raw)
    except ValueError:
        raise ValueError("use a rate like 20/minute, 200/hour or 5 per 10 seconds") from None


def _variable_name(loc: str) -> str:
    """The environment variable a validation error is about, as the docs spell it."""
    for name, field in Settings.model_fields.items():
        alias = field.validation_alias
        choices = alias.choices if isinstance(alias, AliasChoices) else [alias or name]
        spelled = [str(c) for c in choices]
        if loc == name or loc.lower() in (c.lower() for c in spelled):
            return spelled[0]
    return loc.upper()


def load_settings(**overrides: Any) -> Settings:
    """Read settings, turning pydantic's errors into one `ConfigurationError` listing
    every problem by its environment variable name (and never echoing a value)."""
    try:
        return Settings(**overrides)
    except ValidationError as e:
        problems = []
        for err in e.errors(include_input=False, include_url=False):
            name = str(err["loc"][0]) if err["loc"] else "settings"
            env = _variable_name(name)
            message = err["msg"].removeprefix("Value error, ")
            problems.append(f"{env}: {message}")
        raise ConfigurationError(problems) from None
