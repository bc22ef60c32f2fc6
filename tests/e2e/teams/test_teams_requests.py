"""What reaches `/api/messages` without a valid channel token, or without a valid body:
401 (400, 413, 415) and nothing stored, nothing answered, nothing sent."""

from __future__ import annotations

import json
from typing import Any

import jwt
import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import text

from tests.e2e.conftest import services
from tests.e2e.teams.conftest import APP_ID, activity, channel_mention, post_activity
from tests.fakes.bot_framework import (
    BARE_KEY,
    EMPTY_KEY,
    TEAMS_KEY,
    UNKNOWN_KEY,
    WEBCHAT_KEY,
    ChannelIdentity,
    FakeConnector,
)
from tests.fakes.openai_server import FakeOpenAI


async def stored(app: TestClient[Any, Any]) -> int:
    async with services(app).stores.engine.connect() as conn:
        return int((await conn.execute(text("SELECT count(*) FROM inbox"))).scalar() or 0)


BAD_TOKENS: dict[str, dict[str, Any]] = {
    "expired": {"expires_in": -600},
    "not yet valid": {"not_before_offset": 600},
    "unknown key": {"kid": UNKNOWN_KEY},
    "no key id": {"kid": None},
    "wrong audience": {"audience": "00000000-0000-0000-0000-000000000001"},
    "wrong issuer": {"issuer": "https://evil.example.com"},
    "key endorsed for another channel": {"kid": WEBCHAT_KEY},
    "key with no endorsements": {"kid": BARE_KEY},
    "key with an empty endorsement list": {"kid": EMPTY_KEY},
    "unsigned (alg none)": {"alg": "none"},
    "service URL other than the activity's": {
        "extra_claims": {"serviceurl": "https://smba.trafficmanager.net/amer/"}
    },
    "no service URL claim": {"extra_claims": {"serviceurl": None}},
}


@pytest.mark.parametrize("case", BAD_TOKENS, ids=list(BAD_TOKENS))
async def test_a_bad_token_is_refused_with_401_and_nothing_happens(
    case: str, app: TestClient[Any, Any], identity: ChannelIdentity, connector: FakeConnector,
    llm: FakeOpenAI,
) -> None:
    body = channel_mention(connector, "hello?")
    token = identity.token(app_id=APP_ID, service_url=body["serviceUrl"], **BAD_TOKENS[case])

    response = await post_activity(app, identity, body, token=token)

    assert response.status == 401
    assert await stored(app) == 0
    assert llm.requests == []
    assert connector.calls == []


def hmac_token(identity: ChannelIdentity, service_url: str) -> str:
    """HS256 under a published key id: a server that trusts the header's `alg` would
    check it with whatever secret it has."""
    claims = {"aud": APP_ID, "iss": identity.issuer, "serviceurl": service_url,
              "exp": 4102444800, "nbf": 0}
    return jwt.encode(claims, "a-secret-of-at-least-32-bytes-long!", algorithm="HS256",
                      headers={"kid": TEAMS_KEY})


UNUSABLE_HEADERS: dict[str, str | None] = {
    "missing": None,
    "empty": "",
    "not bearer": "Basic dXNlcjpwYXNz",
    "bearer without token": "Bearer ",
    "not a JWT": "Bearer not-a-jwt",
    "garbage segments": "Bearer a.b.c",
}


@pytest.mark.parametrize("case", UNUSABLE_HEADERS, ids=list(UNUSABLE_HEADERS))
async def test_a_request_without_a_usable_bearer_token_gets_401(
    case: str, app: TestClient[Any, Any], identity: ChannelIdentity, connector: FakeConnector,
) -> None:
    header = UNUSABLE_HEADERS[case]
    headers = {} if header is None else {"Authorization": header}
    body = json.dumps(channel_mention(connector, "hello?"))

    response = await app.post("/api/messages", data=body,
                              headers={"Content-Type": "application/json", **headers})

    assert response.status == 401
    assert await stored(app) == 0


async def test_forged_and_hmac_signatures_get_401(
    app: TestClient[Any, Any], identity: ChannelIdentity, connector: FakeConnector,
) -> None:
    body = channel_mention(connector, "hello?")
    for token in (
        identity.forged_token(app_id=APP_ID, service_url=body["serviceUrl"]),
        hmac_token(identity, body["serviceUrl"]),
    ):
        response = await post_activity(app, identity, body, token=token)
        assert response.status == 401
    assert await stored(app) == 0


async def test_a_token_for_another_activity_cannot_be_replayed_to_another_service_url(
    app: TestClient[Any, Any], identity: ChannelIdentity, connector: FakeConnector,
) -> None:
    token = identity.token(app_id=APP_ID, service_url=connector.base_url)
    body = channel_mention(connector, "hello?", serviceUrl="https://attacker.example.com/")

    response = await post_activity(app, identity, body, token=token)

    assert response.status == 401


async def test_a_token_already_accepted_is_still_refused_for_another_service_url(
    app: TestClient[Any, Any], identity: ChannelIdentity, connector: FakeConnector,
) -> None:
    # The server remembers a token it verified; the checks that depend on the request don't.
    token = identity.token(app_id=APP_ID, service_url=connector.base_url)
    first = channel_mention(connector, "hello?")
    replayed = channel_mention(connector, "again?", id="1700000000099",
                               serviceUrl="https://attacker.example.com/")

    assert (await post_activity(app, identity, first, token=token)).status == 200
    assert (await post_activity(app, identity, replayed, token=token)).status == 401
    assert await stored(app) == 1


TEAMS_MESSAGE = '{"type": "message", "channelId": "msteams", "serviceUrl": "http://127.0.0.1/"'


@pytest.mark.parametrize(
    ("payload", "content_type", "status"),
    [
        ("{not json", "application/json", 400),
        ("[1, 2]", "application/json", 400),
        ('{"text": "no type"}', "application/json", 400),
        ('{"type": "message"}', "application/json", 400),
        ("type=message", "application/x-www-form-urlencoded", 415),
        ("\xff\xfe", "application/json", 400),
        (TEAMS_MESSAGE + ', "timestamp": "yesterday"}', "application/json", 400),
        (TEAMS_MESSAGE + ', "from": "someone"}', "application/json", 400),
    ],
    ids=["not JSON", "not an object", "no type", "no serviceUrl", "form body", "not UTF-8",
         "a message with a bad date", "a message with a malformed field"],
)
async def test_a_malformed_body_gets_a_clear_4xx_and_nothing_is_stored(
    payload: str, content_type: str, status: int, app: TestClient[Any, Any],
    identity: ChannelIdentity, connector: FakeConnector,
) -> None:
    token = identity.token(app_id=APP_ID, service_url=connector.base_url)

    response = await app.post(
        "/api/messages", data=payload.encode("latin-1"),
        headers={"Content-Type": content_type, "Authorization": f"Bearer {token}"},
    )

    assert response.status == status
    assert await stored(app) == 0


async def test_an_oversized_body_gets_413(
    app: TestClient[Any, Any], identity: ChannelIdentity, connector: FakeConnector,
) -> None:
    body = channel_mention(connector, "x" * 2_000_000)

    response = await post_activity(app, identity, body)

    assert response.status == 413
    assert await stored(app) == 0


async def test_signing_keys_are_fetched_once_for_many_requests(
    app: TestClient[Any, Any], identity: ChannelIdentity, connector: FakeConnector,
) -> None:
    before = identity.requests_to(identity.KEYS_PATH)
    for n in range(5):
        body = channel_mention(connector, f"question {n}", id=f"17000000000{n}")
        assert (await post_activity(app, identity, body)).status == 200

    assert identity.requests_to(identity.KEYS_PATH) - before <= 1


async def test_an_invoke_the_bot_does_not_handle_gets_501_not_500(
    app: TestClient[Any, Any], identity: ChannelIdentity, connector: FakeConnector,
) -> None:
    task = activity("bbjs_invoke_task_fetch.json", connector)

    response = await post_activity(app, identity, task)

    assert response.status == 501
    assert await stored(app) == 0
    assert connector.calls == []
