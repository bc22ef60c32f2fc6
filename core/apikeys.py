"""API keys kept by Switchboard itself (`switchboard apikey …`), beside the ones in
`SWITCHBOARD_API_KEYS`.

A key is 32 random bytes, shown once; only its SHA-256 is stored. A slow password hash
(bcrypt, argon2) defends guessable secrets against offline guessing; a 256-bit random key
cannot be guessed whatever the hash, and a plain digest can be looked up by index on every
request instead of costing ~100 ms of CPU per request.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

KEY_PREFIX = "sbk_"
PREFIX_LENGTH = len(KEY_PREFIX) + 8  # what `apikey list` shows of a key: enough to tell them apart


@dataclass(frozen=True, kw_only=True)
class ApiKey:
    """A stored key, without the key itself."""

    id: str
    user: str
    prefix: str
    created_at: datetime
    expires_at: datetime | None = None
    revoked_at: datetime | None = None

    def state(self, now: datetime) -> Literal["active", "expired", "revoked"]:
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= now:
            return "expired"
        return "active"


@dataclass(frozen=True, kw_only=True)
class NewKey:
    """A key as made: `secret` is shown to the operator once and never stored."""

    id: str
    secret: str
    prefix: str
    digest: str


def new_key() -> NewKey:
    secret = KEY_PREFIX + secrets.token_urlsafe(32)
    return NewKey(
        id=secrets.token_hex(6), secret=secret, prefix=secret[:PREFIX_LENGTH],
        digest=digest(secret),
    )


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()
