"""The Teams channel in our aiohttp app: `POST /api/messages`."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from adapters.teams.adapter import TeamsAdapter
from adapters.teams.bot import TeamsBot

MESSAGES_PATH = "/api/messages"


@dataclass(frozen=True, slots=True)
class TeamsEndpoint:
    adapter: TeamsAdapter
    bot: TeamsBot


TEAMS_ENDPOINT = web.AppKey("teams_endpoint", TeamsEndpoint)


def add_teams_routes(app: web.Application) -> None:
    """The endpoint itself is set under `TEAMS_ENDPOINT` at start-up."""
    app.router.add_post(MESSAGES_PATH, messages)


async def messages(request: web.Request) -> web.Response:
    endpoint = request.app[TEAMS_ENDPOINT]
    return await endpoint.adapter.process(request, endpoint.bot)
