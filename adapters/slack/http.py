"""Bolt mounted in our aiohttp app: events, slash commands and interactivity share
`POST /slack/events`; the OAuth install pages live beside them when OAuth is on."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_sdk.signature import SignatureVerifier

from adapters.slack.app import STORAGE_UNAVAILABLE, SlackChannel
from adapters.slack.payloads import payload_of, usable
from core.errors import StorageError

log = logging.getLogger(__name__)

SLACK_CHANNEL = web.AppKey("slack_channel", SlackChannel)
EVENTS_PATH = "/slack/events"
INSTALL_PATH = "/slack/install"
REDIRECT_PATH = "/slack/oauth_redirect"


def _signed(body: str, headers: Mapping[str, str], secret: str) -> bool:
    try:
        return SignatureVerifier(secret).is_valid(
            body, headers.get("X-Slack-Request-Timestamp"), headers.get("X-Slack-Signature"))
    except ValueError:  # a timestamp that is not a number
        return False


def add_slack_routes(app: web.Application) -> None:
    """The `SlackChannel` itself is set under `SLACK_CHANNEL` at start-up."""
    app.router.add_post(EVENTS_PATH, events)
    app.router.add_get(INSTALL_PATH, oauth)
    app.router.add_get(REDIRECT_PATH, oauth)


async def events(request: web.Request) -> web.Response:
    raw = await request.read()  # 413 beyond the app's client_max_size
    try:
        body = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise web.HTTPBadRequest(text="the body must be UTF-8") from None
    channel = request.app[SLACK_CHANNEL]
    # Checked before Bolt parses the body: Bolt parses first and raises on a malformed
    # one, which anybody could send (a 500 and a traceback each). Bolt checks again.
    secret = channel.config.signing_secret
    if secret is not None and not _signed(body, request.headers, secret):
        log.warning("refused a Slack request without a valid signature from %s", request.remote)
        raise web.HTTPUnauthorized(text="invalid Slack request signature")
    content_type = request.headers.get("Content-Type")
    payload = payload_of(body, content_type.split(";")[0] if content_type else None)
    if payload is None:  # signed, and still not JSON or a form with a JSON payload
        log.info("refused a signed Slack request whose body could not be parsed")
        raise web.HTTPBadRequest(text="the body is not a Slack request")
    if not usable(payload):
        return web.Response(status=200)  # signed, so from Slack: a 4xx, and it retries
    bolt_request = AsyncBoltRequest(
        body=body, query=request.query_string, headers=dict(request.headers)
    )
    response = await channel.app.async_dispatch(bolt_request)
    if bolt_request.context.get(STORAGE_UNAVAILABLE):
        raise StorageError("recording a Slack event failed")  # 503: Slack retries
    return await to_aiohttp_response(response)


async def oauth(request: web.Request) -> web.Response:
    flow = request.app[SLACK_CHANNEL].app.oauth_flow
    if flow is None:
        raise web.HTTPNotFound(text="Slack OAuth is not configured (SLACK_CLIENT_ID)")
    bolt_request = AsyncBoltRequest(
        body="", query=request.query_string, headers=dict(request.headers)
    )
    if request.path == INSTALL_PATH:
        response = await flow.handle_installation(bolt_request)
    else:
        response = await flow.handle_callback(bolt_request)
    return await to_aiohttp_response(response)
