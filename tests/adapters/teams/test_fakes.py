"""The Bot Framework fakes, driven only through real clients over real HTTP: `requests`, PyJWT's
PyJWKClient and botbuilder's token extractor for ChannelIdentity; msal for FakeLogin; aiohttp and
botbuilder's ConnectorClient for FakeConnector."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import jwt
import msal
import pytest
import requests

from tests.fakes.bot_framework import (
    BARE_KEY,
    BOT_FRAMEWORK_TENANT_ID,
    EMPTY_KEY,
    TEAMS_KEY,
    UNKNOWN_KEY,
    WEBCHAT_KEY,
    ChannelIdentity,
    FakeConnector,
    FakeLogin,
)

APP_ID = "eac5e5c6-ab14-4f50-80cb-49213fe51b1a"
SECRET = "app-password"
SCOPE = "https://api.botframework.com/.default"
SERVICE_URL = "https://smba.trafficmanager.net/amer/"
PERSONAL = "a:1VF4K2uXl-hg-wn2SSWJZYK7Cqox93Xp82wekVXkbOSa"
THREAD = "19:097e6717fd7245bdbeba6baa13840db8@thread.skype;messageid=1571537152320"
GROUP_CHAT = "19:444d246d19234aab86db1a0cb3d13cb8@thread.v2"
STREAMING_FIXTURE = (Path(__file__).parents[2] / "fixtures" / "teams"
                     / "msdocs_outbound_streaming_sequence.normalized.json")


@pytest.fixture(scope="module")
def identity() -> Iterator[ChannelIdentity]:
    with ChannelIdentity() as fake:
        yield fake


@pytest.fixture(scope="module")
def login() -> Iterator[FakeLogin]:
    with FakeLogin() as fake:
        fake.add_app(APP_ID, SECRET)
        yield fake


@pytest.fixture
async def connector() -> AsyncIterator[FakeConnector]:
    async with FakeConnector() as fake:
        yield fake


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(headers={"Authorization": "Bearer bot-token"}) as session:
        yield session


# --- ChannelIdentity -----------------------------------------------------------------------------


def test_metadata_and_jwks_are_served_and_counted(identity: ChannelIdentity) -> None:
    before = identity.requests_to(identity.KEYS_PATH)

    metadata = requests.get(identity.metadata_url, timeout=5).json()
    jwks = requests.get(metadata["jwks_uri"], timeout=5).json()

    assert metadata == {
        "issuer": "https://api.botframework.com",
        "authorization_endpoint": "https://invalid.botframework.com",
        "jwks_uri": identity.keys_url,
        "id_token_signing_alg_values_supported": ["RS256"],
        "token_endpoint_auth_methods_supported": ["private_key_jwt"],
    }
    keys = {key["kid"]: key for key in jwks["keys"]}
    assert set(keys) == {TEAMS_KEY, BARE_KEY, EMPTY_KEY, WEBCHAT_KEY}  # UNKNOWN_KEY unpublished
    assert keys[TEAMS_KEY]["endorsements"] == ["msteams"]
    assert keys[WEBCHAT_KEY]["endorsements"] == ["webchat"]
    assert keys[EMPTY_KEY]["endorsements"] == []
    assert "endorsements" not in keys[BARE_KEY]
    assert all({"kty", "use", "kid", "x5t", "n", "e"} <= set(k) for k in keys.values())
    assert identity.requests_to(identity.KEYS_PATH) == before + 1


def test_token_has_the_channel_token_shape_and_verifies(identity: ChannelIdentity) -> None:
    token = identity.token(app_id=APP_ID, service_url=SERVICE_URL)

    key = jwt.PyJWKClient(identity.keys_url).get_signing_key_from_jwt(token)
    claims = jwt.decode(token, key.key, algorithms=["RS256"], audience=APP_ID,
                        issuer="https://api.botframework.com")

    header = jwt.get_unverified_header(token)
    assert set(header) == {"alg", "kid", "typ", "x5t"}
    assert (header["alg"], header["kid"], header["typ"]) == ("RS256", TEAMS_KEY, "JWT")
    [published] = [k for k in identity.jwks()["keys"] if k["kid"] == TEAMS_KEY]
    assert header["x5t"] == published["x5t"]
    assert set(claims) == {"serviceurl", "nbf", "exp", "iss", "aud"}
    assert claims["serviceurl"] == SERVICE_URL
    assert claims["exp"] - claims["nbf"] == 3600


def test_token_options_expire_delay_and_drop_claims(identity: ChannelIdentity) -> None:
    key = identity.public_key(TEAMS_KEY)

    def decode(token: str) -> dict[str, Any]:
        return jwt.decode(token, key, algorithms=["RS256"], audience=APP_ID)

    with pytest.raises(jwt.ExpiredSignatureError):
        decode(identity.token(app_id=APP_ID, service_url=SERVICE_URL, expires_in=-60))
    with pytest.raises(jwt.ImmatureSignatureError):
        decode(identity.token(app_id=APP_ID, service_url=SERVICE_URL, not_before_offset=600))
    claims = decode(identity.token(app_id=APP_ID, service_url=SERVICE_URL,
                                   extra_claims={"serviceurl": None, "appid": APP_ID}))
    assert "serviceurl" not in claims and claims["appid"] == APP_ID


def test_alg_none_token_is_unsigned(identity: ChannelIdentity) -> None:
    token = identity.token(app_id=APP_ID, service_url=SERVICE_URL, alg="none")

    assert token.endswith(".")  # empty signature
    assert jwt.get_unverified_header(token)["alg"] == "none"
    assert jwt.decode(token, options={"verify_signature": False})["aud"] == APP_ID
    with pytest.raises(jwt.InvalidTokenError):
        jwt.decode(token, identity.public_key(TEAMS_KEY), algorithms=["RS256"], audience=APP_ID)


def test_forged_token_names_the_teams_key_but_fails_its_signature(
    identity: ChannelIdentity,
) -> None:
    token = identity.forged_token(app_id=APP_ID, service_url=SERVICE_URL)

    key = jwt.PyJWKClient(identity.keys_url).get_signing_key_from_jwt(token)
    assert key.key_id == TEAMS_KEY
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(token, key.key, algorithms=["RS256"], audience=APP_ID)


def test_unknown_key_is_not_published(identity: ChannelIdentity) -> None:
    token = identity.token(app_id=APP_ID, service_url=SERVICE_URL, kid=UNKNOWN_KEY)

    with pytest.raises(jwt.PyJWKClientError):
        jwt.PyJWKClient(identity.keys_url).get_signing_key_from_jwt(token)


@pytest.mark.parametrize(
    ("kid", "accepted"),
    [(TEAMS_KEY, True), (WEBCHAT_KEY, False), (BARE_KEY, True), (EMPTY_KEY, True)],
)
async def test_botbuilder_checks_endorsements_against_the_fake_metadata(
    identity: ChannelIdentity, kid: str, accepted: bool
) -> None:
    """botbuilder fetches the metadata with blocking `requests` on this event loop: it works
    because the fake answers from its own thread. Bare and empty endorsements pass botbuilder
    (its check is skipped for an empty list): the adapter must reject those itself."""
    from botframework.connector.auth import JwtTokenExtractor, VerifyOptions

    extractor = JwtTokenExtractor(
        VerifyOptions(issuer=[identity.issuer], audience=None, clock_tolerance=300,
                      ignore_expiration=False),
        identity.metadata_url, ["RS256"],
    )
    header = f"Bearer {identity.token(app_id=APP_ID, service_url=SERVICE_URL, kid=kid)}"

    if accepted:
        claims = await extractor.get_identity_from_auth_header(header, "msteams")
        assert claims.get_claim_value("serviceurl") == SERVICE_URL
    else:
        with pytest.raises(Exception, match="endorsement"):
            await extractor.get_identity_from_auth_header(header, "msteams")


async def test_threaded_fakes_run_from_async_tests_and_shut_down() -> None:
    async with FakeLogin() as fake:
        ca_file, url = fake.ca_file, fake.base_url + fake.discovery_path()
        response = await asyncio.to_thread(requests.get, url, verify=ca_file, timeout=5)
        assert response.json()["token_endpoint"].startswith(fake.base_url)

    assert not Path(ca_file).exists()
    with pytest.raises(requests.ConnectionError):
        requests.get(url, verify=False, timeout=1)


# --- FakeLogin -----------------------------------------------------------------------------------


@pytest.fixture
def trust_login(login: FakeLogin, monkeypatch: pytest.MonkeyPatch) -> FakeLogin:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", login.ca_file)
    return login


def _msal_app(login: FakeLogin, secret: str = SECRET) -> msal.ConfidentialClientApplication:
    return msal.ConfidentialClientApplication(
        APP_ID, client_credential=secret, authority=login.authority("botframework.com"),
        validate_authority=False,
    )


def test_msal_gets_a_bot_token_once_and_then_uses_its_cache(trust_login: FakeLogin) -> None:
    login = trust_login
    requests_before = len(login.token_requests)
    discovery_before = login.requests_to(login.discovery_path())

    app = _msal_app(login)
    first = app.acquire_token_for_client(scopes=[SCOPE])
    second = app.acquire_token_for_client(scopes=[SCOPE])

    assert first["token_type"] == "Bearer" and first["expires_in"] == 3599
    assert (first["token_source"], second["token_source"]) == ("identity_provider", "cache")
    [request] = login.token_requests[requests_before:]
    assert (request.tenant, request.client_id, request.scope, request.status) == (
        "botframework.com", APP_ID, SCOPE, 200)
    assert login.requests_to(login.discovery_path()) == discovery_before + 1
    claims = login.decode(first["access_token"], audience="https://api.botframework.com")
    assert claims["iss"] == f"https://sts.windows.net/{BOT_FRAMEWORK_TENANT_ID}/"
    assert (claims["appid"], claims["ver"], claims["tid"]) == (
        APP_ID, "1.0", BOT_FRAMEWORK_TENANT_ID)


def test_wrong_secret_is_an_aad_invalid_client_error(trust_login: FakeLogin) -> None:
    result = _msal_app(trust_login, secret="wrong").acquire_token_for_client(scopes=[SCOPE])

    assert result["error"] == "invalid_client"
    assert result["error_codes"] == [7000215]
    assert trust_login.token_requests[-1].status == 401


def test_single_tenant_app_gets_no_token_from_another_tenant(login: FakeLogin) -> None:
    login.add_app("single-tenant-app", "pw", tenant="contoso.example")
    url = login.base_url + login.token_path("botframework.com")
    form = {"grant_type": "client_credentials", "client_id": "single-tenant-app",
            "client_secret": "pw", "scope": SCOPE}

    denied = requests.post(url, data=form, verify=login.ca_file, timeout=5)
    allowed = requests.post(login.base_url + login.token_path("contoso.example"), data=form,
                            verify=login.ca_file, timeout=5)

    assert (denied.status_code, denied.json()["error"]) == (400, "unauthorized_client")
    assert allowed.status_code == 200


def test_msal_validating_the_authority_goes_to_microsoft_and_fails_fast(
    trust_login: FakeLogin, monkeypatch: pytest.MonkeyPatch
) -> None:
    """validate_authority=True makes MSAL's constructor ask login.microsoftonline.com
    (instance discovery) about the unknown host; the loopback guard stops it. Name resolution is
    faked so the result does not depend on this machine's DNS."""
    resolved: list[str] = []
    real_getaddrinfo = socket.getaddrinfo

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host in ("127.0.0.1", "localhost"):
            return real_getaddrinfo(host, port, *args, **kwargs)
        resolved.append(str(host))
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("192.0.2.1", int(port)))]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    started = time.monotonic()

    with pytest.raises(requests.ConnectionError, match="loopback"):
        msal.ConfidentialClientApplication(
            APP_ID, client_credential=SECRET, authority=trust_login.authority(),
            validate_authority=True,
        )

    assert time.monotonic() - started < 2
    assert set(resolved) == {"login.microsoftonline.com"}


# --- FakeConnector -------------------------------------------------------------------------------


def _activities_url(connector: FakeConnector, conversation_id: str, activity_id: str = "") -> str:
    url = f"{connector.base_url}v3/conversations/{quote(conversation_id, safe='')}/activities"
    return f"{url}/{quote(activity_id, safe='')}" if activity_id else url


def _stream_activity(
    text: str, stream_type: str, sequence: int | None = None, stream_id: str | None = None,
    *, conversation_id: str = PERSONAL, conversation_type: str = "personal",
) -> dict[str, Any]:
    """Shaped like the requests in STREAMING_FIXTURE."""
    info: dict[str, Any] = {"type": "streaminfo", "streamType": stream_type}
    if stream_id is not None:
        info["streamId"] = stream_id
    if sequence is not None:
        info["streamSequence"] = sequence
    return {
        "type": "message" if stream_type == "final" else "typing",
        "serviceUrl": SERVICE_URL, "channelId": "msteams",
        "from": {"id": f"28:{APP_ID}", "name": "Switchboard"},
        "conversation": {"conversationType": conversation_type, "id": conversation_id},
        "recipient": {"id": "29:1kbOecyrymSn1Ftrb", "aadObjectId": "6d415fdd"},
        "locale": "en-US", "text": text, "entities": [info],
    }


async def _post(
    http: aiohttp.ClientSession, url: str, body: dict[str, Any], method: str = "POST"
) -> tuple[int, Any, Any]:
    async with http.request(method, url, json=body) as response:
        return response.status, await response.json(), response.headers


async def test_send_reply_update_and_delete_show_as_messages(
    connector: FakeConnector, http: aiohttp.ClientSession
) -> None:
    status, sent, _ = await _post(http, _activities_url(connector, PERSONAL),
                                  {"type": "message", "text": "hello"})
    status_reply, reply, _ = await _post(http, _activities_url(connector, THREAD, "1571537152320"),
                                         {"type": "message", "text": "thinking"})
    status_update, updated, _ = await _post(
        http, _activities_url(connector, THREAD, reply["id"]),
        {"type": "message", "text": "done"}, method="PUT")

    assert (status, status_reply, status_update) == (201, 201, 200)
    assert sent["id"] != reply["id"] and updated == {"id": reply["id"]}
    assert [(m.conversation_id, m.text) for m in connector.messages()] == [
        (PERSONAL, "hello"), (THREAD, "done")]
    assert connector.messages(THREAD)[0].reply_to_id == "1571537152320"
    send, reply_call, update = connector.calls
    assert [c.kind for c in connector.calls] == ["send", "reply", "update"]
    assert reply_call.conversation_id == THREAD  # decoded, ";messageid=" kept
    assert (update.activity_id, update.bearer, update.status) == (reply["id"], "bot-token", 200)
    assert connector.activities() == [send.body, reply_call.body]

    async with http.delete(_activities_url(connector, PERSONAL, sent["id"])) as response:
        assert response.status == 200
    assert [m.text for m in connector.messages()] == ["done"]


async def test_streaming_sequence_from_the_teams_docs_gets_the_documented_answers(
    connector: FakeConnector, http: aiohttp.ClientSession
) -> None:
    """Replays msdocs_outbound_streaming_sequence.normalized.json as it is, only putting the
    stream id the fake handed out where the docs show theirs."""
    steps = json.loads(STREAMING_FIXTURE.read_text())["sequence"]
    documented_id = steps[0]["response"]["body"]["id"]
    url = _activities_url(connector, PERSONAL)
    answers: list[tuple[int, Any]] = []

    for step in steps:
        body = json.loads(json.dumps(step["request"]).replace(documented_id, _stream_id(answers)))
        status, reply, _ = await _post(http, url, body)
        answers.append((status, reply))

    stream_id = _stream_id(answers)
    documented = [(s["response"]["status"], s["response"]["body"]) for s in steps]
    assert answers == [(201, {"id": stream_id}), *documented[1:]]  # 201, 202 x3, final 202 {}
    assert connector.violations == []
    [message] = connector.messages()
    assert (message.id, message.stream_id, message.text) == (
        stream_id, stream_id, "A brown fox jumped over the fence.")
    stream = connector.streams[stream_id]
    assert [c.sequence for c in stream.chunks] == [1, 2, 3, 4] and stream.finished
    assert [c.stream_type for c in stream.chunks] == [
        "informative", "informative", "streaming", "streaming"]
    arrivals = [c.at for c in stream.chunks]  # a test of the sender can check its pacing
    assert arrivals == sorted(arrivals)


def _stream_id(answers: list[tuple[int, Any]]) -> str:
    return str(answers[0][1]["id"]) if answers else "(none yet)"


async def test_final_status_201_answers_the_final_with_the_stream_id(
    http: aiohttp.ClientSession,
) -> None:
    async with FakeConnector(final_status=201) as connector:
        url = _activities_url(connector, PERSONAL)
        _, started, _ = await _post(http, url, _stream_activity("A brown fox", "streaming", 1))
        final = await _post(http, url, _stream_activity("A brown fox.", "final",
                                                        stream_id=started["id"]))

    assert final[:2] == (201, {"id": started["id"]})
    assert connector.violations == []


async def test_streaming_protocol_mistakes_are_answered_and_recorded(
    connector: FakeConnector, http: aiohttp.ClientSession
) -> None:
    url = _activities_url(connector, PERSONAL)
    no_text = await _post(http, url, _stream_activity("", "streaming", 1))
    stream_id = (await _post(http, url, _stream_activity("A brown", "streaming", 1)))[1]["id"]
    rewritten = await _post(http, url, _stream_activity("A red", "streaming", 2, stream_id))
    repeated = await _post(http, url, _stream_activity("A red fox", "streaming", 2, stream_id))
    skipped = await _post(http, url, _stream_activity("A red fox ran", "streaming", 5, stream_id))
    await _post(http, url, _stream_activity("A red fox ran.", "final", stream_id=stream_id))
    after_final = await _post(http, url, _stream_activity("more", "streaming", 6, stream_id))

    assert no_text[0] == 400 and no_text[1]["error"]["code"] == "BadRequest"
    assert rewritten[0] == 202
    assert repeated[0] == 202 and repeated[1]["error"]["code"] == (
        "ContentStreamSequenceOrderPreConditionFailed")
    assert skipped[0] == 202
    assert after_final[0] == 403 and after_final[1]["error"] == {
        "code": "ContentStreamNotAllowed",
        "message": "Content stream is not allowed on an already completed streamed message"}
    assert len(connector.violations) == 5
    assert "should include text" in connector.violations[0]
    assert "does not start with the previous chunk's 'A brown'" in connector.violations[1]
    assert "streamSequence 2 after 2 (dropped)" in connector.violations[2]
    assert "skips 3" in connector.violations[3]
    assert "already completed" in connector.violations[4]


async def test_stop_refuses_the_stream_s_next_update_and_keeps_what_it_showed(
    connector: FakeConnector, http: aiohttp.ClientSession
) -> None:
    url = _activities_url(connector, PERSONAL)
    stream_id = (await _post(http, url, _stream_activity("A brown", "streaming", 1)))[1]["id"]

    assert connector.press_stop() == [stream_id]
    refused = await _post(http, url, _stream_activity("A brown fox", "streaming", 2, stream_id))
    final = await _post(http, url, _stream_activity("A brown fox.", "final",
                                                    stream_id=stream_id))
    second = (await _post(http, url, _stream_activity("Next", "streaming", 1)))[0]

    assert refused[:2] == (403, {"error": {"code": "ContentStreamNotAllowed",
                                           "message": "Content stream was cancelled by user."}})
    assert final[:2] == refused[:2]
    assert [m.text for m in connector.messages()] == ["A brown"]
    assert connector.streams[stream_id].finished and second == 201  # a new stream may start
    assert connector.violations == [
        f"stream {stream_id}: update 2 after Teams said the person stopped it"]


async def test_disabled_streaming_is_403_and_plain_messages_still_work(
    connector: FakeConnector, http: aiohttp.ClientSession
) -> None:
    connector.disable_streaming()
    url = _activities_url(connector, PERSONAL)

    status, body, _ = await _post(http, url, _stream_activity("Thinking...", "informative", 1))
    fallback, _, _ = await _post(http, url, {"type": "message", "text": "the answer"})

    assert (status, body) == (403, {"error": {"code": "ContentStreamNotAllowed",
                                              "message": "Content stream is not allowed"}})
    assert fallback == 201
    assert [m.text for m in connector.messages()] == ["the answer"]
    assert connector.violations == []


async def test_streaming_outside_a_personal_chat_is_refused(
    connector: FakeConnector, http: aiohttp.ClientSession
) -> None:
    body = _stream_activity("Thinking...", "informative", 1, conversation_id=GROUP_CHAT,
                            conversation_type="groupChat")

    status, error, _ = await _post(http, _activities_url(connector, GROUP_CHAT), body)

    assert status == 405 and error["error"]["code"] == "MethodNotAllowed"
    assert connector.streams == {}


async def test_scripted_429_with_retry_after_then_normal(
    connector: FakeConnector, http: aiohttp.ClientSession
) -> None:
    connector.script(429, headers={"Retry-After": "1"})
    url = _activities_url(connector, PERSONAL)

    throttled = await _post(http, url, {"type": "message", "text": "hi"})
    accepted = await _post(http, url, {"type": "message", "text": "hi"})

    assert throttled[0] == 429 and throttled[2]["Retry-After"] == "1"
    assert throttled[1]["error"]["code"] == "TooManyRequests"
    assert accepted[0] == 201
    assert [c.status for c in connector.calls] == [429, 201]
    assert [m.text for m in connector.messages()] == ["hi"]


async def test_scripts_match_with_when_count_down_and_can_still_deliver(
    connector: FakeConnector, http: aiohttp.ClientSession
) -> None:
    connector.script(503, times=2, when=lambda call: call.kind == "reply")
    connector.script(504, deliver=True)
    send_url = _activities_url(connector, PERSONAL)
    reply_url = _activities_url(connector, THREAD, "1571537152320")

    statuses = [
        (await _post(http, reply_url, {"type": "message", "text": "r1"}))[0],
        (await _post(http, send_url, {"type": "message", "text": "delivered anyway"}))[0],
        (await _post(http, reply_url, {"type": "message", "text": "r2"}))[0],
        (await _post(http, reply_url, {"type": "message", "text": "r3"}))[0],
    ]

    assert statuses == [503, 504, 503, 201]
    assert [m.text for m in connector.messages()] == ["delivered anyway", "r3"]


async def test_roster_lookup_with_an_encoded_messageid_conversation(
    connector: FakeConnector, http: aiohttp.ClientSession
) -> None:
    member = connector.add_member(id="29:1CFIxRJBLjT", aad_object_id="6b703ce3",
                                  name="Dave Taniguchi", email="dave@example.com")
    members_url = f"{connector.base_url}v3/conversations/{quote(THREAD, safe='')}/members"

    async with http.get(f"{members_url}/{quote('29:1CFIxRJBLjT', safe='')}") as response:
        by_id = (response.status, await response.json())
    async with http.get(f"{members_url}/6b703ce3") as response:
        by_aad_id = await response.json()
    async with http.get(f"{members_url}/29%3Anobody") as response:
        missing = (response.status, await response.json())
    async with http.get(members_url) as response:
        everyone = await response.json()

    assert by_id == (200, {
        "id": "29:1CFIxRJBLjT", "name": "Dave Taniguchi", "aadObjectId": "6b703ce3",
        "email": "dave@example.com", "userPrincipalName": "dave@example.com",
        "givenName": "Dave", "surname": "Taniguchi",
        "tenantId": "72f988bf-86f1-41af-91ab-2d7cd011db47", "userRole": "user"})
    assert by_aad_id == member and everyone == [member]
    assert missing[0] == 404 and missing[1]["error"]["code"] == "MemberNotFoundInConversation"
    assert {c.conversation_id for c in connector.calls} == {THREAD}
    assert [c.member_id for c in connector.calls_to("member")] == [
        "29:1CFIxRJBLjT", "6b703ce3", "29:nobody"]


async def test_require_bearer_rejects_other_tokens_with_401(
    connector: FakeConnector, http: aiohttp.ClientSession
) -> None:
    def validator(token: str | None) -> bool:
        if token is None:
            raise ValueError("no token")  # a raising validator rejects too
        return token == "bot-token"

    connector.require_bearer(validator)
    url = _activities_url(connector, PERSONAL)

    ok = await _post(http, url, {"type": "message", "text": "hi"})
    async with aiohttp.ClientSession() as anonymous:
        denied = await _post(anonymous, url, {"type": "message", "text": "hi"})

    assert (ok[0], denied[0]) == (201, 401)
    assert denied[1] == {"message": "Authorization has been denied for this request."}
    assert [c.bearer for c in connector.calls] == ["bot-token", None]


async def test_wait_helpers_wake_on_the_call_not_on_a_timer(
    connector: FakeConnector, http: aiohttp.ClientSession
) -> None:
    waiting = asyncio.create_task(connector.wait_for_text("answer", timeout=5))
    activity = asyncio.create_task(connector.wait_for_activity(
        lambda a: a.get("type") == "typing", timeout=5))
    await asyncio.sleep(0)  # let both reach their wait
    assert not waiting.done() and not activity.done()

    await _post(http, _activities_url(connector, PERSONAL), {"type": "typing"})
    await _post(http, _activities_url(connector, PERSONAL),
                {"type": "message", "text": "the answer"})
    message = await asyncio.wait_for(waiting, 0.5)

    assert message.text == "the answer"
    assert (await asyncio.wait_for(activity, 0.5)) == {"type": "typing"}
    calls = await connector.wait_for(lambda c: c.kind == "send", count=2, timeout=0.1)
    assert len(calls) == 2
    with pytest.raises(TimeoutError, match="no message containing 'never'"):
        await connector.wait_for_text("never", timeout=0.05)


async def test_botbuilder_connector_client_talks_to_the_fake(connector: FakeConnector) -> None:
    """botbuilder's own client: URL-encoding of ids, JSON shapes and errors it understands."""
    from botbuilder.schema import Activity, ErrorResponseException
    from botframework.connector.aio import ConnectorClient
    from botframework.connector.auth import MicrosoftAppCredentials

    connector.add_member(id="29:abc", aad_object_id="aad-1", name="Ada Lovelace",
                         email="ada@example.com")
    connector.script(429, headers={"Retry-After": "2"}, when=lambda call: call.kind == "send")

    async with ConnectorClient(MicrosoftAppCredentials.empty(),
                               base_url=connector.base_url) as client:
        sent = await client.conversations.reply_to_activity(
            THREAD, "1571537152320", Activity(type="message", text="hi"))
        member = await client.conversations.get_conversation_member(THREAD, "29:abc")
        with pytest.raises(ErrorResponseException) as raised:
            await client.conversations.send_to_conversation(THREAD, Activity(type="message"))

    assert sent.id == connector.messages()[0].id
    assert connector.calls[0].path.startswith(
        "/amer/v3/conversations/19%3A097e6717fd7245bdbeba6baa13840db8%40thread.skype%3B")
    assert (member.name, member.aad_object_id) == ("Ada Lovelace", "aad-1")
    assert raised.value.response.status_code == 429
    assert raised.value.response.headers["Retry-After"] == "2"
