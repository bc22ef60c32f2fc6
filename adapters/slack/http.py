"""Bolt mounted in our aiohttp app: events, slash commands and interactivity share
`POST /slack/events`; the OAuth install pages live beside them when OAuth is on."""

from __future__ import annotations

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response
from slack_bolt.request.async_request import AsyncBoltRequest

from adapters.slack.app import STORAGE_UNAVAILABLE, SlackChannel
from core.errors import StorageError

SLACK_CHANNEL = web.AppKey("slack_channel", SlackChannel)
EVENTS_PATH = "/slack/events"
INSTALL_PATH = "/slack/install"
REDIRECT_PATH = "/slack/oauth_redirect"


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
    bolt_request = AsyncBoltRequest(
        body=body, query=request.query_string, headers=dict(request.headers)
    )
    response = await request.app[SLACK_CHANNEL].app.async_dispatch(bolt_request)
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
