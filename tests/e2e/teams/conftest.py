"""Teams end to end: the real server with its botbuilder adapter, authenticated for real
and offline — channel tokens signed by a fake OpenID/JWKS server (another thread), bot
tokens from a fake Azure AD through MSAL over TLS, replies to a fake Bot Connector — and
activities built from the recorded fixtures in tests/fixtures/teams."""

from __future__ import annotations

import copy
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient

from bots.settings import Settings
from tests.e2e.conftest import MakeSettings, serving
from tests.e2e.conftest import settled as settled  # where the channel tests import it
from tests.fakes.bot_framework import ChannelIdentity, FakeConnector, FakeLogin

FIXTURES = Path(__file__).parents[2] / "fixtures" / "teams"
# The bot of the recorded channel fixtures, so their recipient and mention are ours.
APP_ID = "eac5e5c6-ab14-4f50-80cb-49213fe51b1a"
BOT_ID = f"28:{APP_ID}"
APP_SECRET = "test-client-secret-0123456789"
TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
ASKER_ID = (  # the fixtures' Teams user ids
    "29:1CFIxRJBLjT_io3iNsDZxMk_4YPWQmr3DZUM1I6ihf5L2ocCDqg9S1vkHK6kRdGfK1P_2LFE2nQqFIvdu-GBOZA"
)
ASKER_AAD = "6b703ce3-6d14-4fe6-b90c-dc5f03657ae4"
PERSONAL_ID = (
    "29:1kbOecyrymSn1FtrbJlQNF_BvhIpb7CLGbmjaTldT8A8tXXphjq4BcA2KfWGwoI-ahbEJ_Og1syGOt68MsLId1Q"
)
PERSONAL_AAD = "6d415fdd-f97e-4f70-ac45-e69601e4ecb2"


def fixture(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / name).read_text())
    return data


def activity(name: str, connector: FakeConnector, **changes: Any) -> dict[str, Any]:
    """A copy of a recorded activity, sent to our bot through the fake connector."""
    body = copy.deepcopy(fixture(name))
    body["serviceUrl"] = connector.base_url
    body["recipient"] = {"id": BOT_ID, "name": "Switchboard"}
    body.update(changes)
    return body


def channel_mention(connector: FakeConnector, question: str, **changes: Any) -> dict[str, Any]:
    body = activity("bbjs_message_channel_mention.json", connector, **changes)
    body["entities"][0]["mentioned"]["id"] = BOT_ID
    body["text"] = f"<at>My Combined</at> {question}\n"
    return body


def personal(connector: FakeConnector, question: str, **changes: Any) -> dict[str, Any]:
    return activity("bbjs_message_personal.json", connector, text=question, **changes)


TeamsSettings = Callable[..., Settings]


@pytest.fixture
def teams_settings(
    make_settings: MakeSettings, identity: ChannelIdentity, login: FakeLogin,
    monkeypatch: pytest.MonkeyPatch,
) -> TeamsSettings:
    # MSAL only speaks HTTPS; requests trusts the fake Azure AD's CA through this.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", login.ca_file)

    def make(**overrides: Any) -> Settings:
        values = {
            "microsoft_app_id": APP_ID,
            "microsoft_app_password": APP_SECRET,
            "microsoft_app_tenant_id": TENANT,
            "teams_openid_metadata_url": identity.metadata_url,
            "teams_login_url": login.authority(TENANT),
            "teams_validate_authority": False,
            "teams_service_url_allowlist": "127.0.0.1",
            **overrides,
        }
        return make_settings(**values)

    return make


@pytest.fixture
async def app(teams_settings: TeamsSettings) -> AsyncIterator[TestClient[Any, Any]]:
    async with serving(teams_settings()) as client:
        yield client


async def post_activity(
    client: TestClient[Any, Any],
    identity: ChannelIdentity,
    body: dict[str, Any] | str,
    *,
    token: str | None = None,
    headers: dict[str, str] | None = None,
) -> ClientResponse:
    raw = body if isinstance(body, str) else json.dumps(body)
    if token is None and isinstance(body, dict):
        token = identity.token(app_id=APP_ID, service_url=body["serviceUrl"])
    auth = {"Authorization": f"Bearer {token}"} if token else {}
    return await client.post(
        "/api/messages",
        data=raw.encode(),
        headers={"Content-Type": "application/json; charset=utf-8", **auth, **(headers or {})},
    )
