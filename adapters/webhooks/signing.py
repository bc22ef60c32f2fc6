"""How a delivery is signed, and the one rule a receiver checks it with.

Every POST carries:

    X-Switchboard-Delivery:  <uuid>            the same on every retry: dedupe on it
    X-Switchboard-Timestamp: <unix seconds>    when this attempt was signed
    X-Switchboard-Signature: v1=<hex>          HMAC-SHA256(secret, f"{timestamp}.{body}")

To verify, a receiver:

1. takes the raw request body as bytes — before any JSON parsing, which would change it;
2. computes `HMAC-SHA256(key=secret, msg=timestamp + "." + body)` as lowercase hex;
3. compares it, in constant time, with each `v1=` value of the signature header
   (comma-separated; more than one lets a secret be rotated);
4. rejects the request unless the timestamp is within 5 minutes of its own clock
   (either way), so a captured request cannot be replayed later.

`verify_signature` below is exactly that rule, in Python. Each retry is signed afresh
with a new timestamp, so a delivery retried for longer than 5 minutes still verifies.
"""

from __future__ import annotations

import hashlib
import hmac

DELIVERY_HEADER = "X-Switchboard-Delivery"
TIMESTAMP_HEADER = "X-Switchboard-Timestamp"
SIGNATURE_HEADER = "X-Switchboard-Signature"
EVENT_HEADER = "X-Switchboard-Event"
VERSION = "v1"
TOLERANCE_SECONDS = 300


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """The hex HMAC-SHA256 of `f"{timestamp}.{body}"` under `secret`."""
    message = timestamp.encode("ascii") + b"." + body
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


def sign(secret: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The timestamp and signature headers for one attempt."""
    stamp = str(timestamp)
    return {
        TIMESTAMP_HEADER: stamp,
        SIGNATURE_HEADER: f"{VERSION}={signature(secret, stamp, body)}",
    }


def verify_signature(
    secret: str, timestamp: str, body: bytes, header: str, now: float,
    tolerance: float = TOLERANCE_SECONDS,
) -> bool:
    """True if `header` (X-Switchboard-Signature) signs `body` at `timestamp`
    (X-Switchboard-Timestamp) under `secret`, and `timestamp` is within `tolerance`
    seconds of `now` (unix seconds, e.g. `time.time()`)."""
    try:
        when = int(timestamp)
    except ValueError:
        return False
    if abs(now - when) > tolerance:
        return False
    expected = signature(secret, timestamp, body)
    offered = [
        value for version, _, value in (part.strip().partition("=") for part in header.split(","))
        if version == VERSION
    ]
    # Check every candidate, so timing does not reveal which one matched.
    matches = [
        hmac.compare_digest(expected.encode(), value.encode("utf-8", "replace"))
        for value in offered
    ]
    return any(matches)
