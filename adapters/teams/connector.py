"""The connector client botbuilder builds for each turn it runs (invokes, the bot added to a
chat): its `ConnectorClient` with our own msrest pipeline, under the same rules as
`outbound.BotConnector`, which is what our code sends through — a host allow-list checked
before a token is attached, tokens from the process-wide cache, one shared aiohttp
session, and only 429 retried (a POST that timed out or failed with 5xx may have arrived).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Self
from urllib.parse import urlsplit

import aiohttp
from botframework.connector import BotFrameworkConnectorConfiguration
from botframework.connector.aio import ConnectorClient
from botframework.connector.auth import ConnectorFactory
from msrest.exceptions import ClientRequestError
from msrest.pipeline import AsyncHTTPPolicy, AsyncPipeline, Request, Response
from msrest.pipeline.aiohttp import AioHTTPSender
from msrest.pipeline.universal import RawDeserializer
from msrest.universal_http import ClientRequest
from msrest.universal_http.aiohttp import AioHttpClientResponse
from msrest.universal_http.async_abc import AsyncHTTPSender

from adapters.teams.credentials import CachedCredentialsFactory
from adapters.teams.outbound import MAX_429_RETRIES, REQUEST_TIMEOUT, ServiceHosts, retry_delay

log = logging.getLogger(__name__)

MAX_CLIENTS = 256  # service URLs are a handful per region; this only bounds a flood


class ServiceUrlNotAllowed(ClientRequestError):
    """A stored or received service URL points outside the allow-list: nothing is sent."""


class _Authorize(AsyncHTTPPolicy):
    def __init__(self, factory: CachedCredentialsFactory, scope: str, hosts: ServiceHosts):
        super().__init__()
        self._factory = factory
        self._scope = scope
        self._hosts = hosts

    async def send(self, request: Request, **kwargs: Any) -> Response:
        url = request.http_request.url
        if not self._hosts.allows(url):
            log.error(
                "refused to call %s: its host is not in TEAMS_SERVICE_URL_ALLOWLIST",
                urlsplit(url).hostname,
            )
            raise ServiceUrlNotAllowed(f"service URL host {urlsplit(url).hostname!r} not allowed")
        token = await self._factory.tokens.get(self._scope)
        request.http_request.headers["Authorization"] = f"Bearer {token}"
        return await self.next.send(request, **kwargs)


class ConnectorDriver(AsyncHTTPSender):
    """msrest's HTTP driver on a shared aiohttp session (owned by the app)."""

    def __init__(self, session: aiohttp.ClientSession) -> None:
        self._session = session

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    async def send(self, request: ClientRequest, **config: Any) -> AioHttpClientResponse:
        for attempt in range(MAX_429_RETRIES + 1):
            try:
                raw = await self._session.request(
                    request.method, request.url, headers=dict(request.headers),
                    data=request.data, timeout=REQUEST_TIMEOUT,
                )
            except (aiohttp.ClientError, TimeoutError) as e:
                raise ClientRequestError(f"{request.method} to the connector failed: {e!r}") from e
            if raw.status != 429 or attempt == MAX_429_RETRIES:
                response = AioHttpClientResponse(request, raw)
                await response.load_body()
                return response
            delay = retry_delay(raw.headers.get("Retry-After"), attempt)
            raw.release()
            log.warning("connector answered 429; retrying %s in %.1f s", request.method, delay)
            await asyncio.sleep(delay)
        raise AssertionError("unreachable")


class GuardedConnectorFactory(ConnectorFactory):  # type: ignore[misc]
    """Connector clients for one app: cheap to build (no token is fetched until a call)."""

    def __init__(
        self,
        *,
        app_id: str,
        scope: str,
        credentials: CachedCredentialsFactory,
        hosts: ServiceHosts,
        session: aiohttp.ClientSession,
    ) -> None:
        self._app_id = app_id
        self._scope = scope
        self._credentials = credentials
        self._hosts = hosts
        self._sender = AioHTTPSender(ConnectorDriver(session))
        self._clients: dict[tuple[str, str], ConnectorClient] = {}

    async def create(self, service_url: str, audience: str | None = None) -> ConnectorClient:
        """botbuilder asks for a client for every activity in and out; building one costs
        ~3 ms of msrest set-up, so one client per (service URL, scope) is kept."""
        scope = audience or self._scope
        key = (service_url, scope)
        client = self._clients.get(key)
        if client is None:
            if len(self._clients) >= MAX_CLIENTS:
                self._clients.clear()
            client = self._clients[key] = await self._build(service_url, scope)
        return client

    async def _build(self, service_url: str, scope: str) -> ConnectorClient:
        credentials = await self._credentials.create_credentials(self._app_id, scope, "", True)

        def pipeline(config: BotFrameworkConnectorConfiguration) -> AsyncPipeline:
            policies = [
                config.user_agent_policy,
                _Authorize(self._credentials, scope, self._hosts),
                RawDeserializer(),
            ]
            return AsyncPipeline(policies, self._sender)

        config = BotFrameworkConnectorConfiguration(
            credentials, service_url, pipeline_type=pipeline
        )
        return ConnectorClient(credentials, base_url=service_url, custom_configuration=config)
