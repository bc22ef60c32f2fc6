"""Bot → channel: clouds, login authorities, tokens (real MSAL against the fake Azure AD)
and the service-URL allow-list."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from adapters.teams.config import CloudKeys, TeamsConfig
from adapters.teams.connector import ServiceHosts, _retry_after
from adapters.teams.credentials import AppTokens, TokenUnavailable
from tests.fakes.bot_framework import FakeLogin

APP_ID = "11111111-2222-3333-4444-555555555555"
SECRET = "client-secret-for-tests"
TENANT = "99999999-8888-7777-6666-555555555555"


def config(login_url: str | None = None, *, validate: bool | None = None,
           app_type: str = "SingleTenant") -> TeamsConfig:
    return TeamsConfig(
        app_id=APP_ID, app_password=SECRET, app_type=app_type,  # type: ignore[arg-type]
        tenant_id=TENANT,
        cloud=CloudKeys(login_url=login_url, validate_authority=validate).resolve(),
    )


def test_the_public_cloud_is_the_default() -> None:
    cloud = CloudKeys().resolve()
    assert cloud.token_issuer == "https://api.botframework.com"
    assert cloud.oauth_scope == "https://api.botframework.com"
    assert cloud.openid_metadata_url.startswith("https://login.botframework.com/")
    assert cloud.validate_authority is True


def test_channel_service_selects_the_government_cloud_and_keys_override_it() -> None:
    cloud = CloudKeys(channel_service="https://botframework.azure.us",
                      oauth_url="https://tokens.example.us").resolve()
    assert cloud.token_issuer == "https://api.botframework.us"
    assert cloud.login_url.startswith("https://login.microsoftonline.us/")
    assert cloud.oauth_url == "https://tokens.example.us"


def test_an_unknown_channel_service_needs_every_endpoint() -> None:
    with pytest.raises(ValueError, match="private cloud"):
        CloudKeys(channel_service="https://bots.example.com").resolve()
    private = CloudKeys(
        channel_service="https://bots.example.com",
        openid_metadata_url="https://login.example.com/openid", token_issuer="https://ex",
        login_url="https://login.example.com/t", oauth_scope="https://api.example.com",
    ).resolve()
    assert private.login_url == "https://login.example.com/t"


def test_a_single_tenant_app_signs_in_to_its_own_tenant() -> None:
    assert config().authority == f"https://login.microsoftonline.com/{TENANT}"
    assert config(app_type="MultiTenant").authority == (
        "https://login.microsoftonline.com/botframework.com"
    )
    assert config("https://login.example.com/private").authority == (
        "https://login.example.com/private"
    )


def test_the_allow_list_matches_hosts_and_subdomain_wildcards() -> None:
    hosts = ServiceHosts(("smba.trafficmanager.net", "*.botframework.com"))
    assert hosts.allows("https://smba.trafficmanager.net/amer/")
    assert hosts.allows("https://europe.webchat.botframework.com/")
    assert not hosts.allows("https://botframework.com.evil.example/")
    assert not hosts.allows("https://smba.trafficmanager.net.evil.example/amer/")
    assert not hosts.allows("not a url")


def test_retry_after_is_honoured_within_bounds() -> None:
    assert _retry_after("2", 0) == 2.0
    assert _retry_after("3600", 0) == 30.0
    assert _retry_after(None, 2) == 4.0
    assert _retry_after("Wed, 21 Oct 2015 07:28:00 GMT", 1) == 2.0


@pytest.fixture
def login(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeLogin]:
    with FakeLogin() as fake:
        fake.add_app(APP_ID, SECRET, tenant=TENANT)
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", fake.ca_file)
        yield fake


async def test_a_token_is_fetched_once_off_the_loop_and_reused(login: FakeLogin) -> None:
    loop_thread = threading.get_ident()
    threads: list[int] = []
    tokens = AppTokens.for_config(config(login.authority(TENANT), validate=False))
    acquire = tokens._acquire

    def spy(scope: str) -> dict[str, object]:
        threads.append(threading.get_ident())
        return acquire(scope)

    tokens._acquire = spy
    values = await asyncio.gather(*(tokens.get("https://api.botframework.com") for _ in range(5)))

    assert len(set(values)) == 1
    assert len(login.token_requests) == 1
    assert login.decode(values[0], audience="https://api.botframework.com")["appid"] == APP_ID
    assert threads and loop_thread not in threads


async def test_validate_authority_reaches_msal(login: FakeLogin) -> None:
    # Validating a private authority makes MSAL ask login.microsoftonline.com about it:
    # offline (and for a private cloud) that fails, so VALIDATE_AUTHORITY=false must count.
    tokens = AppTokens.for_config(config(login.authority(TENANT), validate=True))

    with pytest.raises(TokenUnavailable):
        await tokens.get("https://api.botframework.com")
    assert login.token_requests == []


async def test_a_wrong_secret_is_a_clear_error_without_the_secret(login: FakeLogin) -> None:
    login.add_app(APP_ID, "another-secret", tenant=TENANT)
    tokens = AppTokens.for_config(config(login.authority(TENANT), validate=False))

    with pytest.raises(TokenUnavailable) as caught:
        await tokens.get("https://api.botframework.com")
    assert "invalid_client" in str(caught.value)
    assert SECRET not in str(caught.value)


async def test_doctor_checks_the_signing_keys_and_a_bot_token(
    login: FakeLogin, tmp_path: Path
) -> None:
    from bots.doctor import diagnose
    from bots.settings import load_settings
    from tests.fakes.bot_framework import ChannelIdentity

    with ChannelIdentity() as identity:
        values = {
            "data_dir": tmp_path, "microsoft_app_id": APP_ID, "microsoft_app_password": SECRET,
            "microsoft_app_tenant_id": TENANT,
            "teams_openid_metadata_url": identity.metadata_url,
            "teams_login_url": login.authority(TENANT), "teams_validate_authority": False,
        }
        [good] = [c for c in await diagnose(load_settings(**values)) if c.area == "teams"]
        login.add_app(APP_ID, "rotated-secret", tenant=TENANT)
        [bad] = [c for c in await diagnose(load_settings(**values)) if c.area == "teams"]

    assert good.state == "ok" and "signing keys" in good.detail
    assert bad.state == "broken" and "invalid_client" in bad.detail
