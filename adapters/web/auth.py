"""Who is calling the API: an API key's user, or the local user on a loopback address."""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Mapping
from urllib.parse import urlsplit

from aiohttp import web

from adapters.web.errors import json_error
from core.apikeys import KEY_PREFIX
from core.messages import Sender
from core.ports import ApiKeyStore


class WebAuth:
    """A request with `Authorization: Bearer <key>` is served as the key's user: a key
    from `SWITCHBOARD_API_KEYS`, or one made with `switchboard apikey create` (looked up in
    the database on every request, so a revoked key stops at once). Without a key, only
    loopback clients are served, as the machine's own user, and only while
    `SWITCHBOARD_API_KEYS` is unset: the embedded default answers on localhost and
    nowhere else."""

    def __init__(
        self, api_keys: Mapping[str, str], *, stored: ApiKeyStore | None = None,
        local_user: str, admins: frozenset[str] = frozenset(),
    ) -> None:
        self._keys = [(key.encode(), user) for key, user in api_keys.items()]
        self._stored = stored
        self._local_user = local_user
        self._admins = admins

    @property
    def requires_keys(self) -> bool:
        return bool(self._keys)

    def requires_key_from(self, request: web.Request) -> bool:
        """Whether this caller must give a key (what the page asks before the first
        message)."""
        return self.requires_keys or not _is_loopback(request.remote)

    async def sender(self, request: web.Request) -> Sender:
        """The verified caller, or `HTTPUnauthorized`."""
        header = request.headers.get("Authorization", "")
        if header:
            scheme, _, token = header.partition(" ")
            user = await self._match(token.strip()) if scheme.lower() == "bearer" else None
            if user is None:
                raise _unauthorized("a valid API key is required (Authorization: Bearer <key>)")
        elif self._keys:
            raise _unauthorized("a valid API key is required (Authorization: Bearer <key>)")
        elif _is_loopback(request.remote):
            user = self._local_user
        else:
            raise _unauthorized(
                "an API key is required beyond localhost: set SWITCHBOARD_API_KEYS or "
                "make one with `switchboard apikey create`"
            )
        return Sender(id=f"web:local:{user}", name=user)

    async def admin(self, request: web.Request) -> Sender:
        """The verified caller if they administer the assistant (they may make it read
        files): a key's user named in `SWITCHBOARD_ADMINS`, or the machine's own user where
        that user is served without a key. Otherwise 401 or 403.

        A page on another site must not borrow that: a browser names the page's origin on
        every cross-site POST, and a request whose `Origin` is not this host is refused."""
        sender = await self.sender(request)
        origin = request.headers.get("Origin")
        # Behind a proxy that rewrites Host, the page's own host is in X-Forwarded-Host.
        hosts = {request.host, *request.headers.getall("X-Forwarded-Host", ())}
        if origin is not None and urlsplit(origin).netloc not in hosts:
            raise json_error(403, "requests from another site cannot change the knowledge base")
        keyless = not request.headers.get("Authorization")
        if keyless or sender.id.rsplit(":", 1)[-1] in self._admins:
            return sender  # keyless: only the local user gets this far (`sender`)
        raise json_error(
            403, "administrators only: the key's user must be in SWITCHBOARD_ADMINS"
        )

    async def _match(self, token: str) -> str | None:
        if not token:
            return None
        found = None
        presented = token.encode("utf-8", "surrogatepass")
        for key, user in self._keys:  # compare with every key: no timing shortcut
            if hmac.compare_digest(key, presented):
                found = user
        if found is None and self._stored is not None and token.startswith(KEY_PREFIX):
            # Found by the key's SHA-256 through an index: the lookup's timing tells
            # nothing about a key that is not known. Other tokens cost no query.
            found = await self._stored.user_of(token)
        return found


def _is_loopback(remote: str | None) -> bool:
    try:
        return remote is not None and ipaddress.ip_address(remote).is_loopback
    except ValueError:
        return False


def _unauthorized(reason: str) -> web.HTTPException:
    return json_error(401, reason, headers={"WWW-Authenticate": 'Bearer realm="switchboard"'})
