"""Outbound tokens (bot → channel), cached per (app id, scope) and fetched off the loop.

botbuilder 4.17.1 builds new credentials for every turn, asks Azure AD synchronously on
the event loop, and never hands `VALIDATE_AUTHORITY` to MSAL (so a private login endpoint
cannot work). Here one MSAL client per app lives for the process, tokens are reused until
five minutes before they expire, one request at a time per key, in a worker thread.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msal
import msal.exceptions
import requests
from botframework.connector.auth import ServiceClientCredentialsFactory
from msrest.authentication import Authentication

from adapters.teams.config import TeamsConfig

log = logging.getLogger(__name__)

REFRESH_MARGIN = 300.0
HTTP_TIMEOUT = 10


class TokenUnavailable(Exception):
    """Azure AD did not issue a token (wrong secret, unreachable login endpoint…)."""


@dataclass(slots=True)
class _Token:
    value: str
    expires_at: float


class AppTokens:
    """Access tokens of one app, per scope."""

    def __init__(self, acquire: Callable[[str], dict[str, Any]]) -> None:
        self._acquire = acquire
        self._tokens: dict[str, _Token] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    @classmethod
    def for_config(cls, config: TeamsConfig) -> AppTokens:
        """MSAL asks the login endpoint about itself when its client is built, so the
        client is built on first use, in the worker thread, not at start-up."""
        build = _managed_identity if config.app_type == "UserAssignedMSI" else _confidential
        client: list[Callable[[str], dict[str, Any]]] = []
        lock = threading.Lock()

        def acquire(scope: str) -> dict[str, Any]:
            with lock:
                if not client:
                    client.append(build(config))
            return client[0](scope)

        return cls(acquire)

    def cached(self, scope: str) -> str | None:
        token = self._tokens.get(scope)
        if token is None or token.expires_at - REFRESH_MARGIN < time.time():
            return None
        return token.value

    async def get(self, scope: str) -> str:
        if (value := self.cached(scope)) is not None:
            return value
        async with self._locks.setdefault(scope, asyncio.Lock()):
            if (value := self.cached(scope)) is not None:
                return value
            try:
                result = await asyncio.to_thread(self._acquire, scope)
            except (requests.RequestException, msal.exceptions.MsalError, ValueError) as e:
                raise TokenUnavailable(f"the login endpoint failed: {e!r}") from e
            if "access_token" not in result:
                # MSAL's error fields name the problem without the secret.
                description = str(result.get("error_description") or "").splitlines()
                raise TokenUnavailable(
                    f"{result.get('error', 'no token')}: {description[0] if description else ''}"
                )
            expires_in = float(result.get("expires_in", 3600))
            self._tokens[scope] = _Token(result["access_token"], time.time() + expires_in)
            log.info("acquired a bot token for %s (valid %d s)", scope, expires_in)
            return str(result["access_token"])


def _confidential(config: TeamsConfig) -> Callable[[str], dict[str, Any]]:
    app = msal.ConfidentialClientApplication(
        config.app_id,
        client_credential=config.app_password,
        authority=config.authority,
        validate_authority=config.cloud.validate_authority,
        # Instance discovery asks login.microsoftonline.com about the authority: a
        # private login endpoint that opts out of validation must skip it too.
        instance_discovery=config.cloud.validate_authority,
        http_client=requests.Session(),
        timeout=HTTP_TIMEOUT,
    )
    return lambda scope: app.acquire_token_for_client(scopes=[f"{scope}/.default"])


def _managed_identity(config: TeamsConfig) -> Callable[[str], dict[str, Any]]:
    identity = msal.UserAssignedManagedIdentity(client_id=config.app_id)
    msi = msal.ManagedIdentityClient(identity, http_client=requests.Session())
    return lambda scope: msi.acquire_token_for_client(resource=scope)


class TokenCredentials(Authentication):
    """What botbuilder's clients hold as "credentials". Our connector pipeline asks for
    the token itself (`AppTokens.get`); msrest clients built elsewhere by botbuilder
    (the user-token client) sign with the cached token and never block for a new one."""

    def __init__(self, tokens: AppTokens, *, app_id: str, scope: str) -> None:
        self.tokens = tokens
        self.microsoft_app_id = app_id
        self.oauth_scope = scope

    def signed_session(self, session: requests.Session | None = None) -> requests.Session:
        session = session or requests.Session()
        token = self.tokens.cached(self.oauth_scope)
        if token is None:
            raise TokenUnavailable(f"no token for {self.oauth_scope} yet")
        session.headers["Authorization"] = f"Bearer {token}"
        return session


class CachedCredentialsFactory(ServiceClientCredentialsFactory):  # type: ignore[misc]
    """botbuilder's credentials factory, answering from one `AppTokens` per process."""

    def __init__(self, app_id: str, tokens: AppTokens) -> None:
        self._app_id = app_id
        self.tokens = tokens
        self._credentials: dict[str, TokenCredentials] = {}

    async def is_valid_app_id(self, app_id: str) -> bool:
        return app_id == self._app_id

    async def is_authentication_disabled(self) -> bool:
        return False

    async def create_credentials(
        self, app_id: str, oauth_scope: str, login_endpoint: str, validate_authority: bool
    ) -> TokenCredentials:
        if app_id != self._app_id:
            raise PermissionError(f"no credentials for app {app_id!r}")
        credentials = self._credentials.get(oauth_scope)
        if credentials is None:
            credentials = TokenCredentials(self.tokens, app_id=app_id, scope=oauth_scope)
            self._credentials[oauth_scope] = credentials
        return credentials
