"""The documented signature rule, as a receiver applies it."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable

import pytest

from adapters.webhooks.signing import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    TOLERANCE_SECONDS,
    sign,
    verify_signature,
)

SECRET = "whsec-test-3f9a"
BODY = b'{"event":"ticket.created","ticket":{"number":"TCK-1001","title":"Caf\xc3\xa9"}}'
NOW = 1_750_000_000
Signed = tuple[str, bytes, str, str]  # timestamp, body, signature header, secret


def signed(secret: str = SECRET, body: bytes = BODY, at: int = NOW) -> tuple[str, str]:
    headers = sign(secret, at, body)
    return headers[TIMESTAMP_HEADER], headers[SIGNATURE_HEADER]


def test_the_signature_is_hmac_sha256_of_timestamp_dot_body() -> None:
    timestamp, header = signed()
    expected = hmac.new(SECRET.encode(), f"{NOW}.".encode() + BODY, hashlib.sha256).hexdigest()

    assert timestamp == str(NOW)
    assert header == f"v1={expected}"
    assert verify_signature(SECRET, timestamp, BODY, header, now=NOW)


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(lambda t, b, h, s: (t, b + b" ", h, s), id="body changed"),
        pytest.param(lambda t, b, h, s: (str(int(t) + 1), b, h, s), id="timestamp changed"),
        pytest.param(lambda t, b, h, s: (t, b, h, s + "x"), id="other secret"),
        pytest.param(lambda t, b, h, s: (t, b, h.replace("v1=", "v0="), s), id="other version"),
        pytest.param(lambda t, b, h, s: (t, b, "", s), id="no signature"),
        pytest.param(lambda t, b, h, s: ("soon", b, h, s), id="timestamp not a number"),
    ],
)
def test_any_change_fails_verification(tamper: Callable[[str, bytes, str, str], Signed]) -> None:
    timestamp, header = signed()
    timestamp, body, header, secret = tamper(timestamp, BODY, header, SECRET)

    assert not verify_signature(secret, timestamp, body, header, now=NOW)


@pytest.mark.parametrize("skew", [TOLERANCE_SECONDS + 1, -(TOLERANCE_SECONDS + 1)])
def test_a_timestamp_outside_five_minutes_fails(skew: int) -> None:
    timestamp, header = signed(at=NOW - skew)

    assert not verify_signature(SECRET, timestamp, BODY, header, now=NOW)


def test_a_timestamp_within_five_minutes_verifies() -> None:
    timestamp, header = signed(at=NOW - TOLERANCE_SECONDS)

    assert verify_signature(SECRET, timestamp, BODY, header, now=NOW)


def test_any_of_several_signatures_may_match_for_secret_rotation() -> None:
    timestamp, new = signed()
    _, old = signed(secret="the-old-secret")

    assert verify_signature(SECRET, timestamp, BODY, f"{old}, {new}", now=NOW)
    assert verify_signature("the-old-secret", timestamp, BODY, f"{old},{new}", now=NOW)
