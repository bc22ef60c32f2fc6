"""Inbound authentication: the channel's JWT on every request to `/api/messages`.

botbuilder 4.17.1 gets this wrong in ways that matter (it accepts a signing key with no
endorsements, answers 500 for some failures and fetches keys with blocking `requests` on
the event loop), so the check is ours, on PyJWT: RS256 only, a published key endorsed for
the activity's channel, issuer, audience (our app id), lifetime with five minutes' skew,
and the `serviceurl` claim equal to the activity's service URL. A token's signature is
checked once, not with every activity it comes with (`ChannelTokenValidator`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
import jwt
from jwt.algorithms import RSAAlgorithm

log = logging.getLogger(__name__)

CLOCK_SKEW_SECONDS = 300
KEYS_MAX_AGE = 24 * 3600.0
# An unknown key id refreshes the key set, but not more often than this (a flood of
# tokens with made-up key ids must not become a flood of requests to Microsoft).
UNKNOWN_KEY_REFRESH = 300.0
SERVICE_URL_CLAIM = "serviceurl"
# Tokens remembered as verified: the channel uses one at a time; this bounds a flood.
MAX_VERIFIED_TOKENS = 256


class AuthenticationFailed(Exception):
    """The request is not from the channel: answer 401. The message is for the log."""


class KeysUnavailable(Exception):
    """The signing keys could not be fetched: the request may be genuine, answer 503."""


@dataclass(frozen=True, slots=True)
class SigningKey:
    public_key: Any
    endorsements: frozenset[str]


class SigningKeys:
    """The channel's published signing keys (OpenID metadata → JWKS), cached."""

    def __init__(self, session: aiohttp.ClientSession, metadata_url: str) -> None:
        self._session = session
        self._metadata_url = metadata_url
        self._keys: dict[str, SigningKey] = {}
        self._fetched_at = float("-inf")
        self._lock = asyncio.Lock()

    async def get(self, kid: str) -> SigningKey | None:
        now = time.monotonic()
        if now - self._fetched_at > KEYS_MAX_AGE:
            await self._refresh(stale_before=now)
        elif kid not in self._keys and now - self._fetched_at > UNKNOWN_KEY_REFRESH:
            await self._refresh(stale_before=now - UNKNOWN_KEY_REFRESH)
        return self._keys.get(kid)

    async def refresh(self) -> int:
        """Fetch the keys now (a health check); the number of keys loaded."""
        await self._refresh(stale_before=time.monotonic())
        return len(self._keys)

    async def _refresh(self, *, stale_before: float) -> None:
        async with self._lock:
            if self._fetched_at > stale_before:
                return  # another request refreshed while this one waited
            try:
                metadata = await self._json(self._metadata_url)
                jwks = await self._json(str(metadata["jwks_uri"]))
                self._keys = _parse_keys(jwks)
            except (aiohttp.ClientError, TimeoutError, KeyError, TypeError, ValueError) as e:
                if self._keys:
                    log.warning("could not refresh the channel's signing keys: %r", e)
                    return
                raise KeysUnavailable(f"could not fetch the channel's signing keys: {e!r}") from e
            self._fetched_at = time.monotonic()
            log.info("loaded %d channel signing keys", len(self._keys))

    async def _json(self, url: str) -> Any:
        async with self._session.get(url, timeout=aiohttp.ClientTimeout(total=10)) as response:
            response.raise_for_status()
            return await response.json(content_type=None)


def _parse_keys(jwks: Mapping[str, Any]) -> dict[str, SigningKey]:
    keys: dict[str, SigningKey] = {}
    for jwk in jwks["keys"]:
        if jwk.get("kty") != "RSA" or not jwk.get("kid"):
            continue
        keys[jwk["kid"]] = SigningKey(
            public_key=RSAAlgorithm.from_jwk(json.dumps(jwk)),
            endorsements=frozenset(jwk.get("endorsements") or ()),
        )
    return keys


@dataclass(frozen=True, slots=True)
class _Verified:
    """A token whose signature, issuer, audience and lifetime were checked."""

    claims: dict[str, Any]
    kid: str
    key: SigningKey  # the key that verified the signature
    expires: int


class ChannelTokenValidator:
    """The channel signs one token and sends it with many activities (for up to an hour):
    a token that passed is remembered by its exact text until it expires, and only its
    signature, issuer and audience are not checked again. The checks that depend on the
    request run on every one: the key still published and endorsed for this activity's
    channel, the token still in date, its `serviceurl` this activity's service URL."""

    def __init__(
        self, keys: SigningKeys, *, app_id: str, issuer: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._keys = keys
        self._app_id = app_id
        self._issuer = issuer
        self._clock = clock
        self._verified: dict[str, _Verified] = {}

    async def validate(
        self, auth_header: str, *, channel_id: str, service_url: str
    ) -> dict[str, Any]:
        """The token's claims, or `AuthenticationFailed` saying why."""
        scheme, _, token = auth_header.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise AuthenticationFailed("no bearer token")
        token = token.strip()
        verified = self._verified.get(token)
        if verified is not None and await self._keys.get(verified.kid) is not verified.key:
            # The key set changed since (rotation, or the daily refresh): verify afresh.
            del self._verified[token]
            verified = None
        if verified is None:
            verified = await self._verify(token, channel_id)
            self._remember(token, verified)
        _check_endorsed(verified.key, verified.kid, channel_id)
        if verified.expires <= self._clock() - CLOCK_SKEW_SECONDS:  # as PyJWT decides
            self._verified.pop(token, None)
            raise AuthenticationFailed("token rejected: Signature has expired")
        if verified.claims.get(SERVICE_URL_CLAIM) != service_url:
            raise AuthenticationFailed("the token's serviceurl does not match the activity's")
        return dict(verified.claims)

    async def _verify(self, token: str, channel_id: str) -> _Verified:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as e:
            raise AuthenticationFailed(f"not a JWT: {e}") from e
        if header.get("alg") != "RS256":
            raise AuthenticationFailed(f"signing algorithm {header.get('alg')!r} is not RS256")
        kid = header.get("kid")
        key = await self._keys.get(kid) if isinstance(kid, str) else None
        if key is None or not isinstance(kid, str):
            raise AuthenticationFailed(f"unknown signing key {kid!r}")
        # Before the signature, as it always was: a key not endorsed costs no RSA check.
        _check_endorsed(key, kid, channel_id)
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key.public_key,
                algorithms=["RS256"],
                audience=self._app_id,
                issuer=self._issuer,
                leeway=CLOCK_SKEW_SECONDS,
                options={"require": ["exp", "iss", "aud"]},
            )
        except jwt.PyJWTError as e:
            raise AuthenticationFailed(f"token rejected: {e}") from e
        return _Verified(claims=claims, kid=kid, key=key, expires=int(claims["exp"]))

    def _remember(self, token: str, verified: _Verified) -> None:
        if len(self._verified) >= MAX_VERIFIED_TOKENS:
            oldest = self._clock() - CLOCK_SKEW_SECONDS
            for stale in [t for t, v in self._verified.items() if v.expires <= oldest]:
                del self._verified[stale]
            if len(self._verified) >= MAX_VERIFIED_TOKENS:
                del self._verified[next(iter(self._verified))]  # the longest remembered
        self._verified[token] = verified


def _check_endorsed(key: SigningKey, kid: str, channel_id: str) -> None:
    # An empty endorsement list endorses nothing (botbuilder skips the check for it).
    if not channel_id or channel_id not in key.endorsements:
        raise AuthenticationFailed(f"key {kid!r} is not endorsed for channel {channel_id!r}")
