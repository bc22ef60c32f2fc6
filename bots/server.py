"""`switchboard serve`: the aiohttp app factory, one cleanup context per resource."""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import logging
from collections.abc import AsyncIterator, Callable

from aiohttp import web

from adapters.web.auth import WebAuth
from adapters.web.replier import HistoryOnlyRepliers
from adapters.web.routes import WEB_CHANNEL, WebChannel, add_web_routes
from bots.bootstrap import Switchboard, bootstrap
from bots.settings import Settings
from bots.tickets import ticket_context
from core.ports import ChatModel, Retriever

log = logging.getLogger(__name__)

SWITCHBOARD = web.AppKey("switchboard", Switchboard)

CleanupContext = Callable[[web.Application], AsyncIterator[None]]


def create_app(
    settings: Settings, *, model: ChatModel | None = None, retriever: Retriever | None = None
) -> web.Application:
    """Build the app; services start with the app and stop with it, in reverse order."""
    app = web.Application(client_max_size=settings.max_body_bytes)
    add_web_routes(app)
    app.cleanup_ctx.append(_services(settings, model, retriever))
    app.cleanup_ctx.append(_web_channel)
    if settings.slack_enabled:
        # Slack's SDKs load only when Slack is configured.
        from adapters.slack.http import add_slack_routes

        add_slack_routes(app)
        app.cleanup_ctx.append(_slack_channel)
    if settings.teams_enabled:
        # botbuilder loads only when Teams is configured.
        from adapters.teams.http import add_teams_routes

        add_teams_routes(app)
        app.cleanup_ctx.append(_teams_channel)
    # After the channels (they register where notices go), before the worker.
    app.cleanup_ctx.append(ticket_context(SWITCHBOARD))
    app.cleanup_ctx.append(_worker)
    return app


def _services(
    settings: Settings, model: ChatModel | None, retriever: Retriever | None
) -> CleanupContext:
    async def services(app: web.Application) -> AsyncIterator[None]:
        async with bootstrap(settings, model=model, retriever=retriever) as sb:
            app[SWITCHBOARD] = sb
            if settings.bundled_docs and sb.knowledge is not None:
                await _index_bundled_docs(sb)
            yield

    return services


async def _index_bundled_docs(sb: Switchboard) -> None:
    """Switchboard's own documentation, so a newcomer can ask how to set it up and get a
    sourced answer. Incremental: unchanged files cost a hash each."""
    from bots.knowledge import ingest_bundled_docs

    assert sb.knowledge is not None
    try:
        report = await ingest_bundled_docs(sb.knowledge, sb.settings)
    except Exception:
        log.warning("could not index the bundled documentation", exc_info=True)
        return
    if report.added or report.updated:
        log.info("indexed the bundled documentation (%d documents)", report.added + report.updated)


async def _web_channel(app: web.Application) -> AsyncIterator[None]:
    sb = app[SWITCHBOARD]
    sb.repliers.register("web", HistoryOnlyRepliers())
    app[WEB_CHANNEL] = WebChannel(
        name=sb.profile.name,
        conversations=sb.conversations,
        inbox=sb.inbox,
        profiles=sb.profiles,
        worker=sb.worker,
        tickets=sb.tickets,
        auth=WebAuth(sb.settings.api_key_users, local_user=getpass.getuser()),
        probes={"database": sb.check_database, "qdrant": sb.check_knowledge},
    )
    yield


async def _slack_channel(app: web.Application) -> AsyncIterator[None]:
    from bots.slack import slack_channel

    async with slack_channel(app[SWITCHBOARD], app):
        yield


async def _teams_channel(app: web.Application) -> AsyncIterator[None]:
    from bots.teams import teams_channel

    async with teams_channel(app[SWITCHBOARD], app):
        yield


async def _worker(app: web.Application) -> AsyncIterator[None]:
    """The background worker answers what channels queue and what a crash left behind."""
    task = asyncio.create_task(app[SWITCHBOARD].worker.run(), name="inbox-worker")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def serve(settings: Settings) -> None:
    log.info("serving on http://%s:%d", settings.host, settings.port)
    web.run_app(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        print=None,
        access_log_format='%a "%r" %s %b %Tfs',
    )
