"""`POST /api/messages`: botbuilder's `CloudAdapter`, with the parts 4.17.x gets wrong
replaced — authentication (ours, see `auth`), every authentication failure answered 401
without running the turn, and invoke bodies returned as they are (4.17.x serializes them
twice and answers 500).

Messages from Teams, nearly every request, skip botbuilder: once authenticated, the bot
takes them from their JSON (`TeamsBot.receive_message`). Building botbuilder's models,
turn and pipeline for them cost about as much CPU as everything else the request does.
Everything else (invokes, the bot added to a chat, a message botbuilder would read
differently, see `shape`) takes botbuilder's turn as before."""

from __future__ import annotations

import logging
from typing import Any, Protocol

import aiohttp
from aiohttp import web
from botbuilder.core import InvokeResponse, TurnContext, serializer_helper
from botbuilder.integration.aiohttp import CloudAdapter
from botbuilder.schema import Activity
from botframework.connector.auth import (
    AuthenticateRequestResult,
    BotFrameworkAuthentication,
    BotFrameworkAuthenticationFactory,
    ClaimsIdentity,
    ConnectorFactory,
    UserTokenClient,
)

from adapters.teams.auth import (
    AuthenticationFailed,
    ChannelTokenValidator,
    KeysUnavailable,
    SigningKeys,
)
from adapters.teams.config import TeamsConfig
from adapters.teams.connector import GuardedConnectorFactory
from adapters.teams.credentials import AppTokens, CachedCredentialsFactory
from adapters.teams.fields import unusable
from adapters.teams.outbound import ServiceHosts
from adapters.teams.references import reference_of
from adapters.teams.shape import conforms
from core.json_input import parse_json

log = logging.getLogger(__name__)

# The caller id botbuilder records for activities from Azure Bot Service channels.
CALLER_ID = "urn:botframework:azure"
CHANNEL_ID = "msteams"
RAW_ACTIVITY = "switchboard.raw_activity"


class TeamsTurns(Protocol):
    """What the adapter hands activities to (`TeamsBot`)."""

    async def on_turn(self, turn_context: TurnContext) -> None: ...

    async def receive_message(
        self, activity: dict[str, Any], reference: dict[str, Any]
    ) -> None: ...


class TeamsAuthentication(BotFrameworkAuthentication):  # type: ignore[misc]
    """Inbound validation and outbound connectors of one app; the rest (the user-token
    client for `OAUTH_URL`) is botbuilder's, built from the same resolved endpoints."""

    def __init__(
        self, config: TeamsConfig, session: aiohttp.ClientSession, tokens: AppTokens
    ) -> None:
        cloud = config.cloud
        self.app_id = config.app_id
        self.credentials = CachedCredentialsFactory(config.app_id, tokens)
        self.validator = ChannelTokenValidator(
            SigningKeys(session, cloud.openid_metadata_url),
            app_id=config.app_id,
            issuer=cloud.token_issuer,
        )
        self._scope = cloud.oauth_scope
        self._connectors = GuardedConnectorFactory(
            app_id=config.app_id,
            scope=cloud.oauth_scope,
            credentials=self.credentials,
            hosts=ServiceHosts(config.service_hosts),
            session=session,
        )
        self._inner = BotFrameworkAuthenticationFactory.create(
            validate_authority=cloud.validate_authority,
            to_channel_from_bot_login_url=config.authority,
            to_channel_from_bot_oauth_scope=cloud.oauth_scope,
            to_bot_from_channel_token_issuer=cloud.token_issuer,
            oauth_url=cloud.oauth_url,
            to_bot_from_channel_open_id_metadata_url=cloud.openid_metadata_url,
            credential_factory=self.credentials,
        )
        self._user_tokens: UserTokenClient | None = None

    async def authenticate_request(
        self, activity: Activity, auth_header: str
    ) -> AuthenticateRequestResult:
        """Raises `AuthenticationFailed` (→ 401) or `KeysUnavailable` (→ 503)."""
        claims = await self.validator.validate(
            auth_header, channel_id=activity.channel_id or "", service_url=activity.service_url
        )
        return self.authenticated(claims)

    def authenticated(self, claims: dict[str, Any]) -> AuthenticateRequestResult:
        result = AuthenticateRequestResult()
        result.claims_identity = ClaimsIdentity(claims, True)
        result.audience = self._scope
        result.caller_id = CALLER_ID
        result.connector_factory = self._connectors
        return result

    async def authenticate_streaming_request(
        self, auth_header: str, channel_id_header: str
    ) -> AuthenticateRequestResult:
        raise PermissionError("streaming (websocket) connections are not served")

    def create_connector_factory(self, claims_identity: ClaimsIdentity) -> ConnectorFactory:
        return self._connectors

    async def create_user_token_client(self, claims_identity: ClaimsIdentity) -> UserTokenClient:
        if self._user_tokens is None:
            self._user_tokens = await self._inner.create_user_token_client(claims_identity)
        return self._user_tokens

    def get_originating_audience(self) -> str:
        return str(self._scope)


class TeamsAdapter(CloudAdapter):  # type: ignore[misc]
    def __init__(self, authentication: TeamsAuthentication) -> None:
        super().__init__(authentication)
        self.authentication = authentication

    async def process(  # type: ignore[override]
        self, request: web.Request, bot: TeamsTurns, ws_response: Any = None
    ) -> web.Response:
        body = await _read_body(request)
        auth_header = request.headers.get("Authorization", "")
        if _direct(body):
            await self._authenticate(auth_header, body["channelId"], body["serviceUrl"])
            _check_fields(body)
            await bot.receive_message(body, reference_of(body))
            return web.Response(status=200)
        activity = _activity(body)
        claims = await self._authenticate(
            auth_header, activity.channel_id or "", activity.service_url
        )
        _check_fields(body)
        result = self.authentication.authenticated(claims)

        async def logic(turn_context: TurnContext) -> None:
            # botbuilder's models drop the fields they do not declare (a mention entity's
            # `mentioned`, the conversation's `tenantId`): the bot reads the JSON as sent.
            turn_context.turn_state[RAW_ACTIVITY] = body
            await bot.on_turn(turn_context)

        invoke_response = await self.process_activity(result, activity, logic)
        return _http_response(invoke_response)

    async def _authenticate(
        self, auth_header: str, channel_id: str, service_url: str
    ) -> dict[str, Any]:
        try:
            return await self.authentication.validator.validate(
                auth_header, channel_id=channel_id, service_url=service_url
            )
        except AuthenticationFailed as e:
            log.warning("refused a Teams request: %s", e)
            raise web.HTTPUnauthorized(text="unauthorized") from None
        except KeysUnavailable as e:
            log.error("%s", e)
            raise web.HTTPServiceUnavailable(text="cannot verify the request now") from None


def raw_activity(turn_context: TurnContext) -> dict[str, Any]:
    """The incoming activity's JSON exactly as the channel sent it."""
    raw = turn_context.turn_state.get(RAW_ACTIVITY)
    return raw if isinstance(raw, dict) else dict(turn_context.activity.serialize())


async def _read_body(request: web.Request) -> dict[str, Any]:
    if request.content_type != "application/json":
        raise web.HTTPUnsupportedMediaType(text="activities are application/json")
    raw = await request.read()  # 413 beyond the app's client_max_size
    try:
        body = parse_json(raw)
    except ValueError:  # also nested too deep, lone surrogates, invalid UTF-8
        raise web.HTTPBadRequest(text="the body is not JSON") from None
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(text="the body is not an activity")
    return body


def _check_fields(body: dict[str, Any]) -> None:
    """400 for an authenticated activity whose fields the bot cannot read; one line."""
    if problems := unusable(body):
        kind = body.get("type") if isinstance(body.get("type"), str) else "?"
        log.warning("refused a Teams %s activity: %s", kind, "; ".join(problems))
        raise web.HTTPBadRequest(text="the activity's fields are not usable")


def _direct(body: dict[str, Any]) -> bool:
    """A message from Teams that botbuilder would read as it is (`shape`) and answer with
    200 and no body: the bot takes it from its JSON. (A message expecting its replies in
    the response, `expectReplies`, is botbuilder's to buffer.)"""
    return (
        body.get("type") == "message"
        and body.get("channelId") == CHANNEL_ID
        and isinstance(body.get("serviceUrl"), str)
        and body.get("deliveryMode") != "expectReplies"
        and conforms(body)
    )


def _activity(body: dict[str, Any]) -> Activity:
    try:
        activity = Activity().deserialize(body)
    except Exception:  # msrest raises several kinds for a malformed body
        raise web.HTTPBadRequest(text="the body is not an activity") from None
    if not activity.type or not isinstance(activity.service_url, str):
        raise web.HTTPBadRequest(text="an activity needs a type and a serviceUrl")
    return activity


def _http_response(invoke_response: InvokeResponse | None) -> web.Response:
    if invoke_response is None:
        return web.Response(status=200)
    body = invoke_response.body
    if body is None:
        return web.Response(status=invoke_response.status)
    if not isinstance(body, dict | list | str | int | float | bool):
        body = serializer_helper(body)
    return web.json_response(body, status=invoke_response.status)
