"""Who is calling the API: an API key's user, or the local user on a loopback address."""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Mapping

from aiohttp import web

from adapters.web.errors import json_error
from core.messages import Sender


class WebAuth:
    """With `SWITCHBOARD_API_KEYS` set, every API request needs `Authorization: Bearer
    <key>`. Without keys, only loopback clients are served, as the machine's own user:
    the embedded default answers on localhost and nowhere else."""

    def __init__(self, api_keys: Mapping[str, str], *, local_user: str) -> None:
        self._keys = [(key.encode(), user) for key, user in api_keys.items()]
        self._local_user = local_user

    @property
    def requires_keys(self) -> bool:
        return bool(self._keys)

    def sender(self, request: web.Request) -> Sender:
        """The verified caller, or `HTTPUnauthorized`."""
        if self._keys:
            scheme, _, token = request.headers.get("Authorization", "").partition(" ")
            user = self._match(token.strip().encode()) if scheme.lower() == "bearer" else None
            if user is None:
                raise _unauthorized("a valid API key is required (Authorization: Bearer <key>)")
        elif _is_loopback(request.remote):
            user = self._local_user
        else:
            raise _unauthorized("set SWITCHBOARD_API_KEYS to serve the API beyond localhost")
        return Sender(id=f"web:local:{user}", name=user)

    def _match(self, token: bytes) -> str | None:
        found = None
        for key, user in self._keys:  # compare with every key: no timing shortcut
            if hmac.compare_digest(key, token):
                found = user
        return found


def _is_loopback(remote: str | None) -> bool:
    try:
        return remote is not None and ipaddress.ip_address(remote).is_loopback
    except ValueError:
        return False


def _unauthorized(reason: str) -> web.HTTPException:
    return json_error(401, reason, headers={"WWW-Authenticate": 'Bearer realm="switchboard"'})
