"""Bot → channel: clouds, login authorities, tokens (real MSAL against the fake Azure AD),
the service-URL allow-list, and the Bot Connector client against the fake connector."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from adapters.teams import outbound
from adapters.teams.config import CloudKeys, TeamsConfig
from adapters.teams.credentials import AppTokens, TokenUnavailable
from adapters.teams.outbound import (
    MAX_429_RETRIES,
    BotConnector,
    ConnectorError,
    ServiceHosts,
    ServiceUrlNotAllowed,
    retry_delay,
)
from tests.fakes.bot_framework import FakeConnector, FakeLogin

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
    assert retry_delay("2", 0) == 2.0
    assert retry_delay("3600", 0) == 30.0
    assert retry_delay(None, 2) == 4.0
    assert retry_delay("Wed, 21 Oct 2015 07:28:00 GMT", 1) == 2.0


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


# --- the Bot Connector client ---------------------------------------------------------------------

REFERENCE = {
    "activityId": "1571537152320",
    "user": {"id": "29:user", "name": "Dave", "aadObjectId": "6b703ce3"},
    "bot": {"id": "28:bot", "name": "Switchboard"},
    "conversation": {"isGroup": True, "conversationType": "channel",
                     "id": "19:abc@thread.skype;messageid=1571537152320"},
    "channelId": "msteams",
    "locale": "en-US",
    "serviceUrl": "",  # the fake connector's, set per test
}


class CountingTokens(AppTokens):
    def __init__(self) -> None:
        self.requests = 0

        def acquire(scope: str) -> dict[str, object]:
            self.requests += 1
            return {"access_token": f"bot-token-{self.requests}", "expires_in": 3600}

        super().__init__(acquire)


@pytest.fixture
async def connector() -> AsyncIterator[FakeConnector]:
    async with FakeConnector() as fake:
        yield fake


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as http:
        yield http


def bot_connector(
    session: aiohttp.ClientSession, tokens: AppTokens, hosts: tuple[str, ...] = ("127.0.0.1",)
) -> BotConnector:
    return BotConnector(session, tokens, scope="https://api.botframework.com",
                        hosts=ServiceHosts(hosts))


def at(connector: FakeConnector, **changes: object) -> dict[str, object]:
    return {**REFERENCE, "serviceUrl": connector.base_url, **changes}


async def test_a_reply_goes_to_the_activity_it_answers_with_one_token(
    connector: FakeConnector, session: aiohttp.ClientSession,
) -> None:
    tokens = CountingTokens()
    client = bot_connector(session, tokens)

    first = await client.send(at(connector), {"type": "message", "text": "one"})
    await client.send(at(connector), {"type": "typing"})

    [reply, typing] = connector.calls
    assert reply.kind == typing.kind == "reply"
    assert reply.conversation_id == REFERENCE["conversation"]["id"]  # type: ignore[index]
    assert reply.activity_id == "1571537152320"
    assert first == connector.messages()[0].id
    assert reply.activity["from"] == REFERENCE["bot"]
    assert reply.activity["recipient"] == REFERENCE["user"]
    assert reply.activity["replyToId"] == "1571537152320"
    assert reply.bearer == typing.bearer == "bot-token-1"
    assert tokens.requests == 1


async def test_without_an_activity_to_answer_it_is_sent_to_the_conversation(
    connector: FakeConnector, session: aiohttp.ClientSession,
) -> None:
    client = bot_connector(session, CountingTokens())
    reference = {k: v for k, v in at(connector).items() if k != "activityId"}

    await client.send(reference, {"type": "message", "text": "Welcome"})

    [call] = connector.calls
    assert call.kind == "send"
    assert "replyToId" not in call.activity


async def test_a_host_off_the_allow_list_gets_nothing_and_no_token_is_asked_for(
    connector: FakeConnector, session: aiohttp.ClientSession,
) -> None:
    tokens = CountingTokens()
    client = bot_connector(session, tokens, hosts=("smba.trafficmanager.net",))

    with pytest.raises(ServiceUrlNotAllowed):
        await client.send(at(connector), {"type": "message", "text": "no"})
    with pytest.raises(ServiceUrlNotAllowed):
        await client.member(connector.base_url, "19:abc", "29:user")

    assert connector.calls == []
    assert tokens.requests == 0


async def test_429_is_retried_after_retry_after_and_then_given_up(
    connector: FakeConnector, session: aiohttp.ClientSession,
) -> None:
    client = bot_connector(session, CountingTokens())
    connector.script(429, headers={"Retry-After": "0"}, times=2)

    assert await client.send(at(connector), {"type": "message", "text": "late"})
    connector.script(429, headers={"Retry-After": "0"}, times=MAX_429_RETRIES + 1)
    with pytest.raises(ConnectorError) as caught:
        await client.send(at(connector), {"type": "message", "text": "never"})

    assert [c.status for c in connector.calls] == [429, 429, 201] + [429] * (MAX_429_RETRIES + 1)
    assert caught.value.status == 429


@pytest.mark.parametrize("status", [403, 404, 500, 502, 503])
async def test_other_failures_are_not_retried_and_keep_their_status(
    status: int, connector: FakeConnector, session: aiohttp.ClientSession,
) -> None:
    client = bot_connector(session, CountingTokens())
    connector.script(status, deliver=True)

    with pytest.raises(ConnectorError) as caught:
        await client.send(at(connector), {"type": "message", "text": "maybe arrived"})

    assert caught.value.status == status
    assert len(connector.calls) == 1


async def test_an_error_keeps_the_connector_s_code_and_message(
    connector: FakeConnector, session: aiohttp.ClientSession,
) -> None:
    # Teams says why it refused a stream update only in the message (same code for all).
    client = bot_connector(session, CountingTokens())
    body = {"error": {"code": "ContentStreamNotAllowed",
                      "message": "Content stream finished due to exceeded streaming time."}}
    connector.script(403, body=body)
    connector.script(403, body={"unexpected": True})

    with pytest.raises(ConnectorError) as caught:
        await client.send(at(connector), {"type": "typing", "text": "so far"})
    with pytest.raises(ConnectorError) as bare:
        await client.send(at(connector), {"type": "typing", "text": "so far"})

    assert caught.value.code == "ContentStreamNotAllowed"
    assert caught.value.detail == "Content stream finished due to exceeded streaming time."
    assert (bare.value.status, bare.value.code, bare.value.detail) == (403, None, None)


async def test_no_answer_is_an_error_without_a_status(session: aiohttp.ClientSession) -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}/amer/"
    client = bot_connector(session, CountingTokens())

    with pytest.raises(ConnectorError) as caught:
        await client.send({**REFERENCE, "serviceUrl": closed}, {"type": "typing"})

    assert caught.value.status is None


async def test_every_call_has_a_timeout(
    session: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def hang(request: web.Request) -> web.Response:
        await asyncio.sleep(10)
        return web.json_response({"id": "late"})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", hang)
    monkeypatch.setattr(outbound, "REQUEST_TIMEOUT", aiohttp.ClientTimeout(total=0.2))
    async with TestServer(app, host="127.0.0.1") as server:
        client = bot_connector(session, CountingTokens())
        started = time.monotonic()
        with pytest.raises(ConnectorError) as caught:
            await client.send({**REFERENCE, "serviceUrl": str(server.make_url("/amer/"))},
                              {"type": "typing"})
        with pytest.raises(ConnectorError):
            await client.member(str(server.make_url("/amer/")), "19:abc", "29:user")

    assert caught.value.status is None
    assert time.monotonic() - started < 2


async def test_a_member_is_read_from_the_roster(
    connector: FakeConnector, session: aiohttp.ClientSession,
) -> None:
    client = bot_connector(session, CountingTokens())
    connector.add_member(id="29:user", aad_object_id="6b703ce3", name="Dave T",
                         email="dave@example.com")

    member = await client.member(connector.base_url, "19:abc@thread.skype", "29:user")
    with pytest.raises(ConnectorError) as missing:
        await client.member(connector.base_url, "19:abc@thread.skype", "29:nobody")

    assert member["email"] == "dave@example.com"
    assert missing.value.status == 404
    [found, _] = connector.calls
    assert (found.kind, found.conversation_id, found.member_id) == (
        "member", "19:abc@thread.skype", "29:user")
