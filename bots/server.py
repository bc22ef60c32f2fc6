"""`switchboard serve` and `switchboard worker`: the aiohttp app factory for each role, one
cleanup context per resource, and the process's life from start to drained stop.

- `web` verifies, translates, records (`accept`) and acknowledges; it never runs a turn.
- `worker` claims and answers (and owns the embedded Qdrant shard); it listens on no port.
- `all` is both in one process (the Quick start).

On SIGTERM or SIGINT a process drains: new work gets 503 with Retry-After (Slack and
Teams retry; a load balancer sees `/readyz` fail and sends it elsewhere), answers in
progress get `SWITCHBOARD_SHUTDOWN_GRACE` seconds to finish, and what still runs after
that goes back to the inbox for the next process. A second signal stops at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import getpass
import logging
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Literal

from aiohttp import web

from adapters.metrics.prometheus import CONTENT_TYPE, PrometheusTelemetry
from adapters.sockets.control import answers as control_answers
from adapters.sockets.control import control_socket
from adapters.web import ingest as ingest_routes
from adapters.web.auth import WebAuth
from adapters.web.errors import json_errors
from adapters.web.metrics import METRICS_ENDPOINT, MetricsEndpoint, add_metrics_route
from adapters.web.routes import WEB_CHANNEL, WebChannel, add_web_routes
from bots.bootstrap import Switchboard, bootstrap
from bots.retention import retention_context
from bots.settings import Settings
from bots.sources import sources_context
from bots.tickets import ticket_context, ticket_notifier
from core.errors import StorageError
from core.messages import Sender
from core.ports import ChatModel, Retriever

if TYPE_CHECKING:  # qdrant-client loads only where a Qdrant server is configured
    from adapters.qdrant.server import ServerKnowledgeIndex

log = logging.getLogger(__name__)

Role = Literal["all", "web", "worker"]
SWITCHBOARD = web.AppKey("switchboard", Switchboard)
DRAINING = web.AppKey("draining", asyncio.Event)
TELEMETRY = web.AppKey("telemetry", PrometheusTelemetry)
RETRY_AFTER_SECONDS = 10  # what a refused request is told while the process drains
HTTP_SHUTDOWN_SECONDS = 3.0  # for requests still open once the answers have ended
ACCESS_LOG_FORMAT = '%a "%r" %s %b %Tfs'
# Platforms stop retrying a delivery within minutes; a day of delivery ids is plenty.
DELIVERY_MEMORY = timedelta(days=1)
BACKLOG_READ_SECONDS = 3.0  # a scrape waits this long for the inbox's numbers at most

CleanupContext = Callable[[web.Application], AsyncIterator[None]]


def create_app(
    settings: Settings,
    *,
    role: Role = "all",
    model: ChatModel | None = None,
    retriever: Retriever | None = None,
) -> web.Application:
    """Build the app; services start with the app and stop with it, in reverse order."""
    receives, answers = role in ("all", "web"), role in ("all", "worker")
    app = web.Application(client_max_size=settings.max_body_bytes, middlewares=[_drain_gate])
    app[DRAINING] = asyncio.Event()
    app[TELEMETRY] = PrometheusTelemetry(role=role)  # this app's own registry
    if receives:
        add_web_routes(app)
        add_metrics_route(app)
    app.cleanup_ctx.append(
        _services(settings, model, retriever, answers=answers, receives=receives)
    )
    if receives:
        app.cleanup_ctx.append(_web_channel)
    if settings.metrics_port is not None:
        app.cleanup_ctx.append(_metrics_listener(settings.host, settings.metrics_port))
    if settings.slack_enabled:
        # Slack's SDKs load only when Slack is configured.
        if receives:
            from adapters.slack.http import add_slack_routes

            add_slack_routes(app)
        app.cleanup_ctx.append(_slack_channel(receive=receives))
    if settings.teams_enabled:
        # botbuilder loads only when Teams is configured.
        if receives:
            from adapters.teams.http import add_teams_routes

            add_teams_routes(app)
        app.cleanup_ctx.append(_teams_channel(receive=receives))
    # After the channels (they register where notices go), before the worker.
    app.cleanup_ctx.append(ticket_context(SWITCHBOARD))
    if receives:
        app.cleanup_ctx.append(_forget_old_deliveries)
    if answers:
        # The answering processes purge (SWITCHBOARD_RETENTION_DAYS): there is always one.
        app.cleanup_ctx.append(retention_context(SWITCHBOARD))
        app.cleanup_ctx.append(_control_socket)
        app.cleanup_ctx.append(sources_context(SWITCHBOARD))  # SWITCHBOARD_SOURCES, `source add`
        app.cleanup_ctx.append(_worker)
    return app


async def _freeze_startup_objects(app: web.Application) -> None:
    """Move what start-up made (modules, SDK clients, settings) out of the collector's
    sight: a full collection no longer walks them while people wait for acks. For the
    serving processes only (tests build many apps in one process). Measured
    with `benchmarks/slack_load.py`, 50 conversations: ack p99 101-141 ms -> 70-93 ms."""
    gc.collect()
    gc.freeze()


def _services(
    settings: Settings, model: ChatModel | None, retriever: Retriever | None, *,
    answers: bool, receives: bool,
) -> CleanupContext:
    async def services(app: web.Application) -> AsyncIterator[None]:
        async with bootstrap(
            settings, model=model, retriever=retriever, answers=answers, receives=receives,
            listens=True, open_knowledge=answers, telemetry=app[TELEMETRY],
        ) as sb:
            app[SWITCHBOARD] = sb
            if settings.bundled_docs and sb.ingestor is not None:
                await _index_bundled_docs(sb)
            yield

    return services


async def _index_bundled_docs(sb: Switchboard) -> None:
    """Switchboard's own documentation, so a newcomer can ask how to set it up and get a
    sourced answer. Incremental: unchanged files cost a hash each."""
    from bots.knowledge import ingest_bundled_docs

    assert sb.ingestor is not None
    try:
        report = await ingest_bundled_docs(sb.ingestor, sb.settings)
    except Exception:
        log.warning("could not index the bundled documentation", exc_info=True)
        return
    if report.added or report.updated:
        log.info("indexed the bundled documentation (%d documents)", report.added + report.updated)


async def _web_channel(app: web.Application) -> AsyncIterator[None]:
    sb = app[SWITCHBOARD]
    reader = _document_reader(sb)
    probes = {"database": sb.check_database}
    if sb.knowledge is not None:
        probes["qdrant"] = sb.check_knowledge
    app[WEB_CHANNEL] = WebChannel(
        name=sb.profile.name,
        conversations=sb.conversations,
        inbox=sb.inbox,
        relay=sb.relay,
        work_added=sb.work_added,
        tickets=sb.tickets,
        auth=_web_auth(sb),
        probes=probes,
        feedback=sb.feedback,
        documents=sb.knowledge or reader,
        limiter=sb.limiter,
        groups=sb.stores.groups,
        stopper=sb.stopper,
    )
    app[METRICS_ENDPOINT] = _metrics_endpoint(app, app[WEB_CHANNEL].auth)
    app[ingest_routes.KNOWLEDGE_ADMIN] = _knowledge_admin(sb, app[WEB_CHANNEL].auth.admin)
    try:
        yield
    finally:
        if reader is not None:
            await reader.aclose()


def _web_auth(sb: Switchboard) -> WebAuth:
    return WebAuth(sb.settings.api_key_users, stored=sb.api_keys, local_user=getpass.getuser(),
                   admins=sb.settings.admin_names)


def _knowledge_admin(
    sb: Switchboard, authorize: Callable[[web.Request], Awaitable[Sender]]
) -> ingest_routes.KnowledgeAdmin:
    from bots.knowledge import IndexAdmin

    base = None
    if sb.ingestor is not None and sb.knowledge is not None:
        base = IndexAdmin(sb.ingestor, sb.settings, where=sb.knowledge.describe())
    return ingest_routes.KnowledgeAdmin(
        base=base, authorize=authorize, uploads=sb.settings.data_dir / "uploads",
        max_upload_bytes=sb.settings.max_upload_bytes,
    )


async def _control_socket(app: web.Application) -> AsyncIterator[None]:
    """Where `switchboard ingest` on this machine reaches the process that owns the
    index (`adapters/sockets/control.py`): the admin routes on a Unix socket only this
    user can enter. A second process on the same data directory leaves it to the first."""
    sb = app[SWITCHBOARD]
    path = control_socket(sb.settings.data_dir)
    if sb.ingestor is None:
        yield
        return
    if await control_answers(path):
        log.warning("another process already takes ingests for %s", sb.settings.data_dir)
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.parent.chmod(0o700)
    path.unlink(missing_ok=True)  # left by a process that died (it did not answer)
    control = web.Application(middlewares=[_drain_gate, json_errors])
    control[DRAINING] = app[DRAINING]
    ingest_routes.api.add_to(control)

    async def local_admin(request: web.Request) -> Sender:
        return Sender(id=f"cli:local:{getpass.getuser()}", name=getpass.getuser())

    control[ingest_routes.KNOWLEDGE_ADMIN] = _knowledge_admin(sb, local_admin)
    runner = web.AppRunner(control, handle_signals=False, access_log=None,
                           shutdown_timeout=HTTP_SHUTDOWN_SECONDS)
    await runner.setup()
    inode = None
    try:
        await web.UnixSite(runner, str(path)).start()
        path.chmod(0o600)
        inode = path.stat().st_ino
        log.info("taking ingests on %s", path)
        yield
    finally:
        await runner.cleanup()
        with contextlib.suppress(OSError):
            if inode is not None and path.stat().st_ino == inode:
                path.unlink()


def _metrics_endpoint(app: web.Application, auth: WebAuth) -> MetricsEndpoint:
    """`/metrics` of this app: its telemetry, with the inbox read as it is scraped."""
    sb, telemetry = app[SWITCHBOARD], app[TELEMETRY]

    async def scrape() -> bytes:
        backlog = None
        if sb.stores.backlog is not None:
            try:
                async with asyncio.timeout(BACKLOG_READ_SECONDS):
                    backlog = await sb.stores.backlog.read()
            except Exception as e:  # the database is away: the other metrics still count
                log.warning("could not read the inbox backlog for metrics (%s)", type(e).__name__)
        telemetry.observe_backlog(backlog)
        return telemetry.exposition()

    return MetricsEndpoint(auth=auth, scrape=scrape, content_type=CONTENT_TYPE)


def _metrics_listener(host: str, port: int) -> CleanupContext:
    """SWITCHBOARD_METRICS_PORT: `/metrics` on a port of its own, for a worker (which
    serves nothing else) or to keep scrapes off the public port. Guarded like the API."""

    async def listener(app: web.Application) -> AsyncIterator[None]:
        metrics_app = web.Application()
        add_metrics_route(metrics_app)
        metrics_app[METRICS_ENDPOINT] = _metrics_endpoint(app, _web_auth(app[SWITCHBOARD]))
        runner = web.AppRunner(metrics_app, handle_signals=False, access_log=None)
        await runner.setup()
        try:
            await web.TCPSite(runner, host, port).start()
            log.info("metrics on http://%s:%d/metrics", host, port)
            yield
        finally:
            await runner.cleanup()

    return listener


def _document_reader(sb: Switchboard) -> ServerKnowledgeIndex | None:
    """The web role beside a Qdrant server reads cited documents from it (for the source
    view); beside the embedded shard it cannot, as only the worker may open that."""
    if sb.knowledge is not None or sb.settings.qdrant_url is None:
        return None
    from adapters.qdrant.server import ServerKnowledgeIndex

    key = sb.settings.qdrant_api_key
    return ServerKnowledgeIndex(
        sb.settings.qdrant_url, key.get_secret_value() if key else None
    )


def _slack_channel(*, receive: bool) -> CleanupContext:
    async def slack(app: web.Application) -> AsyncIterator[None]:
        from adapters.slack.http import SLACK_CHANNEL
        from adapters.slack.wiring import slack_wiring
        from bots.slack import slack_config

        sb = app[SWITCHBOARD]
        async with slack_wiring(
            slack_config(sb.settings), receive=receive, inbox=sb.inbox,
            deliveries=sb.deliveries, feedback=sb.feedback, tickets=sb.tickets,
            work_added=sb.work_added, engine=sb.stores.engine, limiter=sb.limiter,
            stopper=sb.stopper,
            profiles=sb.profiles,
        ) as wired:
            if wired.channel is not None:
                app[SLACK_CHANNEL] = wired.channel
            sb.repliers.register("slack", wired.repliers)
            if sb.channel_histories is not None:
                sb.channel_histories.register("slack", wired.history)
            ticket_notifier(app).register("slack", wired.notices)
            yield

    return slack


def _teams_channel(*, receive: bool) -> CleanupContext:
    async def teams(app: web.Application) -> AsyncIterator[None]:
        from adapters.teams.http import TEAMS_ENDPOINT, TeamsEndpoint
        from adapters.teams.translate import CHANNEL
        from adapters.teams.wiring import teams_wiring
        from bots.teams import teams_config

        sb = app[SWITCHBOARD]
        async with teams_wiring(
            teams_config(sb.settings), receive=receive, inbox=sb.inbox,
            deliveries=sb.deliveries, feedback=sb.feedback, sent_messages=sb.sent_messages,
            references=sb.references, tickets=sb.tickets, work_added=sb.work_added,
            streams=sb.streams, limiter=sb.limiter,
        ) as wired:
            if wired.bot is not None:
                app[TEAMS_ENDPOINT] = TeamsEndpoint(adapter=wired.adapter, bot=wired.bot)
            sb.repliers.register(CHANNEL, wired.repliers)
            ticket_notifier(app).register(CHANNEL, wired.notices)
            yield

    return teams


async def _forget_old_deliveries(app: web.Application) -> AsyncIterator[None]:
    deliveries = app[SWITCHBOARD].deliveries
    rate_counts = app[SWITCHBOARD].stores.rate_counts

    async def prune() -> None:
        while True:
            try:
                forgotten = await deliveries.forget_before(datetime.now(UTC) - DELIVERY_MEMORY)
                log.debug("forgot %d old delivery ids", forgotten)
                if rate_counts is not None:
                    log.debug("forgot %d ended rate-limit windows", await rate_counts.forget_ended())
            except Exception:
                log.warning("could not prune old delivery ids", exc_info=True)
            await asyncio.sleep(3600)

    task = asyncio.create_task(prune(), name="delivery-pruner")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def _worker(app: web.Application) -> AsyncIterator[None]:
    """The worker answers what channels queue and what a crash left behind."""
    worker = app[SWITCHBOARD].worker
    assert worker is not None
    task = asyncio.create_task(worker.run(), name="inbox-worker")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


@web.middleware
async def _drain_gate(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """503 with Retry-After where the request cannot be taken now, so the platform (or
    client) retries: while the process drains (`/readyz` fails and any POST is refused;
    what is already running ends normally), and while the database refuses writes (a
    message that could not be recorded is not acknowledged)."""
    if request.app[DRAINING].is_set():
        if request.path == "/readyz":
            return web.json_response({"status": "draining"}, status=503)
        if request.method == "POST":
            return _unavailable("shutting down; try again shortly")
    try:
        return await handler(request)
    except StorageError as e:
        log.warning("%s %s: %s; answered 503", request.method, request.path, e)
        return _unavailable("the database is unavailable; try again shortly")


def _unavailable(message: str) -> web.Response:
    return web.json_response({"error": message}, status=503,
                             headers={"Retry-After": str(RETRY_AFTER_SECONDS)})


def serve(settings: Settings, *, role: Role = "all") -> None:
    """`switchboard serve`: listen until SIGTERM or SIGINT, then drain."""
    asyncio.run(_run(create_app(settings, role=role), settings, listen=True))


def work(settings: Settings) -> None:
    """`switchboard worker`: claim and answer until SIGTERM or SIGINT, then drain."""
    asyncio.run(_run(create_app(settings, role="worker"), settings, listen=False))


async def _run(app: web.Application, settings: Settings, *, listen: bool) -> None:
    app.on_startup.append(_freeze_startup_objects)
    runner = web.AppRunner(app, handle_signals=False, access_log_format=ACCESS_LOG_FORMAT,
                           shutdown_timeout=HTTP_SHUTDOWN_SECONDS)
    first, again = asyncio.Event(), asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, lambda: (again if first.is_set() else first).set())
    try:
        await runner.setup()  # starts the services (and the worker)
        if listen:
            await web.TCPSite(runner, settings.host, settings.port).start()
            log.info("serving on http://%s:%d", settings.host, settings.port)
        else:
            log.info("worker running")
        await first.wait()
        await _drain(app, settings.shutdown_grace, stop_now=again)
    finally:
        await runner.cleanup()  # stops listening; the worker's unfinished answers release
        log.info("stopped")


async def _drain(app: web.Application, grace: float, *, stop_now: asyncio.Event) -> None:
    app[DRAINING].set()
    sb = app.get(SWITCHBOARD)
    worker = sb.worker if sb is not None else None
    if worker is None:
        log.info("stopping: no new work is accepted")
        return
    log.info("stopping: no new work; %d answers in progress get up to %g s to finish "
             "(signal again to stop now)", worker.busy, grace)
    finished = asyncio.ensure_future(worker.drain())
    interrupted = asyncio.ensure_future(stop_now.wait())
    await asyncio.wait({finished, interrupted}, timeout=grace,
                       return_when=asyncio.FIRST_COMPLETED)
    interrupted.cancel()
    if not finished.done():
        finished.cancel()
        log.warning("stopping with %d answers unfinished: they go back to the inbox for the "
                    "next process", worker.busy)
