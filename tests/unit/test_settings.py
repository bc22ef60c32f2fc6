"""Settings are validated at start-up, every problem at once, secrets never shown."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from bots.logs import RedactSecrets, json_formatter
from bots.settings import load_settings
from core.errors import ConfigurationError


def test_embedded_defaults_need_no_configuration(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path)
    assert settings.sqlalchemy_url == f"sqlite+aiosqlite:///{tmp_path / 'switchboard.db'}"
    assert settings.qdrant_path == tmp_path / "qdrant"
    assert not settings.model_configured
    assert settings.port == 3978 and settings.host == "127.0.0.1"


def test_every_problem_is_listed_at_once_by_variable_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORT", "eighty")
    monkeypatch.setenv("DATABASE_URL", "mysql://root:pw@db/switchboard")
    monkeypatch.setenv("OPENAI_BASE_URL", "localhost:11434")
    monkeypatch.setenv("SWITCHBOARD_API_KEYS", "alice")
    with pytest.raises(ConfigurationError) as caught:
        load_settings()
    names = [p.split(":")[0] for p in caught.value.problems]
    assert sorted(names) == ["DATABASE_URL", "OPENAI_BASE_URL", "PORT", "SWITCHBOARD_API_KEYS"]
    assert "pw" not in str(caught.value)


def test_secrets_are_redacted_in_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-live-abcdef123456")
    monkeypatch.setenv("DATABASE_URL", "postgresql://sb:s3cret-pw@db.internal/sb")
    settings = load_settings()
    assert "sk-live-abcdef123456" not in repr(settings)
    assert "s3cret-pw" not in repr(settings)
    assert settings.describe_database() == "postgresql://sb:***@db.internal/sb"


def test_api_keys_map_keys_to_users(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SWITCHBOARD_API_KEYS", "alice:0123456789abcdef, bob:fedcba9876543210")
    assert load_settings().api_key_users == {"0123456789abcdef": "alice", "fedcba9876543210": "bob"}


def test_secrets_never_reach_the_log(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-live-abcdef123456")
    monkeypatch.setenv("DATABASE_URL", "postgresql://sb:s3cret-pw@db.internal/sb")
    redact = RedactSecrets(load_settings().secrets())
    try:
        raise RuntimeError("connect to postgresql://sb:s3cret-pw@db.internal failed")
    except RuntimeError as e:
        record = logging.LogRecord(
            "t", logging.ERROR, __file__, 1, "key %s rejected", ("sk-live-abcdef123456",), (type(e), e, e.__traceback__)
        )
    redact.filter(record)
    for formatter in (logging.Formatter(), json_formatter()):
        formatted = formatter.format(record)
        assert "sk-live-abcdef123456" not in formatted and "s3cret-pw" not in formatted
        assert "key *** rejected" in formatted and "connect to postgresql" in formatted


@pytest.mark.parametrize(
    ("env", "problem"),
    [
        ({"SLACK_BOT_TOKEN": "xoxb-1"}, "SLACK_SIGNING_SECRET is required"),
        ({"SLACK_BOT_TOKEN": "xoxp-user-token", "SLACK_SIGNING_SECRET": "s"}, "xoxb-"),
        ({"SLACK_APP_TOKEN": "xapp-1"}, "SLACK_BOT_TOKEN is not"),
        ({"SLACK_CLIENT_ID": "1.2", "SLACK_SIGNING_SECRET": "s"}, "both SLACK_CLIENT_ID"),
        (
            {"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_CLIENT_ID": "1.2",
             "SLACK_CLIENT_SECRET": "c", "SLACK_SIGNING_SECRET": "s"},
            "not both",
        ),
    ],
)
def test_an_incomplete_slack_setup_is_refused_with_the_reason(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], problem: str
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigurationError, match=problem):
        load_settings()


def test_socket_mode_needs_no_signing_secret_and_slack_secrets_are_masked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-secret-bot-token")
    monkeypatch.setenv("SLACK_APP_TOKEN", "xapp-secret-app-token")
    monkeypatch.setenv("SLACK_ALLOWED_CHANNELS", "C1, C2,")

    settings = load_settings()

    assert settings.slack_enabled
    assert settings.slack_allowed_channel_ids == {"C1", "C2"}
    assert {"xoxb-secret-bot-token", "xapp-secret-app-token"} <= set(settings.secrets())
    assert "secret-bot-token" not in repr(settings) and "secret-app" not in repr(settings)


def test_teams_is_off_until_an_app_id_is_set(tmp_path: Path) -> None:
    assert not load_settings(data_dir=tmp_path).teams_enabled


def test_teams_settings_take_botbuilders_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MicrosoftAppId", "11111111-2222-3333-4444-555555555555")
    monkeypatch.setenv("MicrosoftAppPassword", "client-secret-value")
    monkeypatch.setenv("MicrosoftAppTenantId", "tenant-guid")
    monkeypatch.setenv("VALIDATE_AUTHORITY", "false")
    monkeypatch.setenv("TEAMS_ALLOWED_TENANTS", "t1, t2")
    monkeypatch.setenv("TEAMS_SERVICE_URL_ALLOWLIST", "smba.trafficmanager.net,*.example.com")

    settings = load_settings()

    assert settings.teams_enabled and settings.microsoft_app_type == "SingleTenant"
    assert settings.teams_validate_authority is False
    assert settings.teams_allowed_tenant_ids == frozenset({"t1", "t2"})
    assert settings.teams_service_hosts == ("*.example.com", "smba.trafficmanager.net")
    assert "client-secret-value" in settings.secrets()
    assert "client-secret-value" not in repr(settings)


@pytest.mark.parametrize(
    ("env", "problem"),
    [
        ({"MicrosoftAppTenantId": "t"}, "MicrosoftAppPassword is required"),
        ({"MicrosoftAppPassword": "secret"}, "MicrosoftAppTenantId is required"),
        ({"MicrosoftAppType": "Personal", "MicrosoftAppPassword": "s", "MicrosoftAppTenantId": "t"},
         "MicrosoftAppType"),
    ],
)
def test_an_incomplete_teams_app_is_refused_at_start_up(
    env: dict[str, str], problem: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MicrosoftAppId", "11111111-2222-3333-4444-555555555555")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigurationError) as caught:
        load_settings()
    assert problem in str(caught.value)


def test_a_managed_identity_needs_no_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MicrosoftAppId", "11111111-2222-3333-4444-555555555555")
    monkeypatch.setenv("MicrosoftAppType", "UserAssignedMSI")
    assert load_settings().microsoft_app_type == "UserAssignedMSI"


def test_log_and_metrics_settings_take_the_issues_short_names_too(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("LOG_FORMAT", "JSON")
    monkeypatch.setenv("LOG_CONTENT", "1")
    monkeypatch.setenv("SWITCHBOARD_METRICS_PORT", "9464")
    settings = load_settings(data_dir=tmp_path)
    assert settings.log_format == "json" and settings.log_content
    assert settings.metrics_port == 9464
    assert load_settings(data_dir=tmp_path, log_format="text").log_format == "text"


def test_a_bad_log_format_or_metrics_port_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SWITCHBOARD_LOG_FORMAT", "xml")
    monkeypatch.setenv("SWITCHBOARD_METRICS_PORT", "0")
    with pytest.raises(ConfigurationError) as caught:
        load_settings()
    names = sorted(p.split(":")[0] for p in caught.value.problems)
    assert names == ["SWITCHBOARD_LOG_FORMAT", "SWITCHBOARD_METRICS_PORT"]


def test_a_key_given_twice_is_refused_with_every_other_problem_and_never_shown(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The same key for two users would let one act as the other: refused at start-up."""
    monkeypatch.setenv("SWITCHBOARD_API_KEYS", "alice:shared-key-0123456789, bob:own-key-0123456789,"
                       "carol:shared-key-0123456789, dave:short, erin:shared-key-0123456789")
    monkeypatch.setenv("SWITCHBOARD_RATE_LIMIT_USER", "lots")
    monkeypatch.setenv("PORT", "-1")
    with pytest.raises(ConfigurationError) as refused:
        load_settings()

    message = str(refused.value)
    [keys] = [p for p in refused.value.problems if p.startswith("SWITCHBOARD_API_KEYS:")]
    assert "entry 3 (carol) repeats the key of alice" in keys
    assert "entry 5 (erin) repeats the key of alice" in keys
    assert "entry 4 is not user:key" in keys
    assert any(p.startswith("SWITCHBOARD_RATE_LIMIT_USER:") for p in refused.value.problems)
    assert any(p.startswith("PORT:") for p in refused.value.problems)
    assert "shared-key-0123456789" not in message and "short" not in message


def test_rate_limits_are_off_unless_set(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_settings().user_rate_limit is None
    assert load_settings().workspace_rate_limit is None
    monkeypatch.setenv("SWITCHBOARD_RATE_LIMIT_USER", "20/minute")
    monkeypatch.setenv("SWITCHBOARD_RATE_LIMIT_WORKSPACE", "5 per 10 seconds")
    settings = load_settings()
    assert settings.user_rate_limit is not None and settings.user_rate_limit.amount == 20
    assert settings.workspace_rate_limit is not None
    assert settings.workspace_rate_limit.get_expiry() == 10
