"""The channel token check: a token's signature is verified once, but what depends on the
request (channel endorsement, lifetime, service URL) is checked on every one."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import jwt
import pytest

from adapters.teams import auth
from adapters.teams.auth import (
    CLOCK_SKEW_SECONDS,
    AuthenticationFailed,
    ChannelTokenValidator,
    SigningKeys,
)
from tests.fakes.bot_framework import ChannelIdentity

APP_ID = "eac5e5c6-ab14-4f50-80cb-49213fe51b1a"
SERVICE_URL = "https://smba.trafficmanager.net/amer/"


@pytest.fixture(scope="module")
def identity() -> Iterator[ChannelIdentity]:
    with ChannelIdentity() as fake:
        yield fake


@pytest.fixture
async def keys(identity: ChannelIdentity) -> AsyncIterator[SigningKeys]:
    async with aiohttp.ClientSession() as session:
        yield SigningKeys(session, identity.metadata_url)


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def decodes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The tokens whose signature was checked."""
    seen: list[str] = []
    real = jwt.decode

    def spy(token: str, *args: Any, **kwargs: Any) -> Any:
        seen.append(token)
        return real(token, *args, **kwargs)

    monkeypatch.setattr(auth.jwt, "decode", spy)
    return seen


def validator(keys: SigningKeys, identity: ChannelIdentity, clock: Clock) -> ChannelTokenValidator:
    return ChannelTokenValidator(keys, app_id=APP_ID, issuer=identity.issuer, clock=clock)


async def test_a_token_is_verified_once_for_many_activities(
    keys: SigningKeys, identity: ChannelIdentity, clock: Clock, decodes: list[str],
) -> None:
    check = validator(keys, identity, clock)
    token = identity.token(app_id=APP_ID, service_url=SERVICE_URL)

    for _ in range(5):
        claims = await check.validate(f"Bearer {token}", channel_id="msteams",
                                      service_url=SERVICE_URL)

    assert claims["serviceurl"] == SERVICE_URL
    assert decodes == [token]


async def test_a_remembered_token_is_refused_for_another_service_url(
    keys: SigningKeys, identity: ChannelIdentity, clock: Clock, decodes: list[str],
) -> None:
    check = validator(keys, identity, clock)
    token = identity.token(app_id=APP_ID, service_url=SERVICE_URL)
    await check.validate(f"Bearer {token}", channel_id="msteams", service_url=SERVICE_URL)

    with pytest.raises(AuthenticationFailed, match="serviceurl"):
        await check.validate(f"Bearer {token}", channel_id="msteams",
                             service_url="https://attacker.example.com/")
    assert decodes == [token]  # refused from memory, not by checking again


async def test_a_remembered_token_is_refused_once_it_expires(
    keys: SigningKeys, identity: ChannelIdentity, clock: Clock, decodes: list[str],
) -> None:
    check = validator(keys, identity, clock)
    token = identity.token(app_id=APP_ID, service_url=SERVICE_URL, expires_in=60)
    expires = jwt.PyJWT().decode(token, options={"verify_signature": False})["exp"]
    await check.validate(f"Bearer {token}", channel_id="msteams", service_url=SERVICE_URL)

    clock.now = expires + CLOCK_SKEW_SECONDS - 1  # within the allowed skew: still good
    await check.validate(f"Bearer {token}", channel_id="msteams", service_url=SERVICE_URL)
    clock.now = expires + CLOCK_SKEW_SECONDS
    with pytest.raises(AuthenticationFailed, match="expired"):
        await check.validate(f"Bearer {token}", channel_id="msteams", service_url=SERVICE_URL)
    assert decodes == [token]


async def test_a_remembered_token_is_refused_for_a_channel_its_key_is_not_endorsed_for(
    keys: SigningKeys, identity: ChannelIdentity, clock: Clock,
) -> None:
    check = validator(keys, identity, clock)
    token = identity.token(app_id=APP_ID, service_url=SERVICE_URL)
    await check.validate(f"Bearer {token}", channel_id="msteams", service_url=SERVICE_URL)

    with pytest.raises(AuthenticationFailed, match="not endorsed"):
        await check.validate(f"Bearer {token}", channel_id="webchat", service_url=SERVICE_URL)


async def test_refused_tokens_are_not_remembered(
    keys: SigningKeys, identity: ChannelIdentity, clock: Clock, decodes: list[str],
) -> None:
    check = validator(keys, identity, clock)
    forged = identity.forged_token(app_id=APP_ID, service_url=SERVICE_URL)

    for _ in range(2):
        with pytest.raises(AuthenticationFailed):
            await check.validate(f"Bearer {forged}", channel_id="msteams",
                                 service_url=SERVICE_URL)
    assert decodes == [forged, forged]


async def test_new_signing_keys_mean_verifying_again(
    keys: SigningKeys, identity: ChannelIdentity, clock: Clock, decodes: list[str],
) -> None:
    check = validator(keys, identity, clock)
    token = identity.token(app_id=APP_ID, service_url=SERVICE_URL)
    await check.validate(f"Bearer {token}", channel_id="msteams", service_url=SERVICE_URL)

    await keys.refresh()
    await check.validate(f"Bearer {token}", channel_id="msteams", service_url=SERVICE_URL)

    assert decodes == [token, token]


async def test_how_many_tokens_are_remembered_is_bounded(
    keys: SigningKeys, identity: ChannelIdentity, clock: Clock, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(auth, "MAX_VERIFIED_TOKENS", 3)
    check = validator(keys, identity, clock)

    for n in range(5):
        token = identity.token(app_id=APP_ID, service_url=f"{SERVICE_URL}{n}/")
        await check.validate(f"Bearer {token}", channel_id="msteams",
                             service_url=f"{SERVICE_URL}{n}/")

    assert len(check._verified) == 3
