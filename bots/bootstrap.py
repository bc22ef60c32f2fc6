"""The composition root: the only place that chooses implementations.

Entry points (the server, the terminal chat, doctor) call `bootstrap()`; tests call it too,
with substitutes for what they fake (the model), so they run the real wiring.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Protocol

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.sql import migrate
from adapters.sql.api_keys import SqlApiKeys
from adapters.sql.backlog import SqlInboxBacklog
from adapters.sql.conversations import SqlConversationStore
from adapters.sql.deliveries import SqlDeliveryLog
from adapters.sql.engine import Executor, create_engine, create_executor, drain
from adapters.sql.feedback import SqlFeedbackStore
from adapters.sql.groups import SqlGroupStore
from adapters.sql.inbox import SqlInbox
from adapters.sql.profiles import SqlProfileStore
from adapters.sql.rate_limits import SqlLimitStorage
from adapters.sql.references import SqlConversationReferences
from adapters.sql.sent_messages import SqlSentMessages
from adapters.sql.tickets import SqlTicketStore
from bots.profile import BotProfile, default_profile
from bots.settings import Settings
from core.context import ContextAssembler, KnowledgeProvider
from core.errors import ConfigurationError
from core.orchestrator import Orchestrator
from core.ports import (
    ApiKeyStore,
    ChatModel,
    ConversationReferences,
    ConversationStore,
    DeliveryLog,
    DocumentReader,
    Exclusive,
    FeedbackStore,
    GroupStore,
    Inbox,
    InboxBacklog,
    KnowledgeStore,
    ProfileStore,
    RateLimiter,
    Retriever,
    SentMessages,
    Telemetry,
)
from core.relay import RelayTransport, ReplyRelay
from core.replies import ReplyEvent
from core.stops import Stopper
from core.telemetry import (
    NO_TELEMETRY,
    ObservedInbox,
    ObservedLimiter,
    ObservedModel,
    ObservedRetriever,
)
from core.tickets.model import TicketStore
from core.tickets.service import TicketService
from core.tickets.tools import TICKET_TOOLS
from core.titles import Titles
from core.tools.channels import ChannelHistories, read_channel
from core.tools.knowledge import search_knowledge
from core.tools.registry import ToolRegistry, ToolServices
from core.tools.user_info import get_user_info
from core.worker import ChannelRepliers, Worker

if TYPE_CHECKING:  # imported where it is used: asyncpg is for PostgreSQL deployments
    from adapters.ingest.service import Ingestor
    from adapters.sql.locks import PgExclusive

log = logging.getLogger(__name__)

HISTORY_TURNS = 100  # earlier turns a started message comes with (then trimmed to budget)


class KnowledgeIndex(Retriever, KnowledgeStore, DocumentReader, Protocol):
    async def ping(self) -> None: ...

    async def prepare(self) -> None: ...

    async def optimize(self) -> None: ...

    def describe(self) -> str: ...

    async def aclose(self) -> None: ...


@dataclass(frozen=True, kw_only=True)
class Stores:
    """Where the assistant keeps things: the inbox's units of work and the other stores.
    `sql_stores` builds them on the configured database; unit tests pass in-memory ones."""

    inbox: Inbox
    conversations: ConversationStore
    profiles: ProfileStore
    deliveries: DeliveryLog
    feedback: FeedbackStore
    sent_messages: SentMessages
    tickets: TicketStore
    references: ConversationReferences
    check: Callable[[], Awaitable[None]]  # raises when the database does not answer
    engine: AsyncEngine | None = None  # for slack_sdk's OAuth stores
    api_keys: ApiKeyStore | None = None  # keys made with `switchboard apikey create`
    groups: GroupStore | None = None  # groups made with `switchboard groups add`
    rate_counts: SqlLimitStorage | None = None  # rate-limit counters shared by processes
    executor: Executor | None = None  # counts units and commits, for the benchmarks
    backlog: InboxBacklog | None = None  # what waits, for the metrics


@dataclass(frozen=True, kw_only=True)
class Switchboard:
    """Everything a channel needs, built once per process. A process that only receives
    (the web role) has no model, knowledge index, orchestrator or worker."""

    settings: Settings
    profile: BotProfile
    stores: Stores
    inbox: Inbox
    conversations: ConversationStore
    profiles: ProfileStore
    deliveries: DeliveryLog
    feedback: FeedbackStore
    sent_messages: SentMessages
    tickets: TicketService
    references: ConversationReferences
    api_keys: ApiKeyStore | None
    limiter: RateLimiter | None  # None: no rate limit configured
    repliers: ChannelRepliers
    relay: ReplyRelay
    signals: Signals | None
    streams: Exclusive | None  # who streams where, across the processes (Teams)
    model: ChatModel | None
    knowledge: KnowledgeIndex | None
    ingestor: Ingestor | None  # every write to `knowledge`, one run at a time
    orchestrator: Orchestrator | None
    worker: Worker | None
    stopper: Stopper  # stops an answer being written, in whichever process writes it
    # Where Slack's wiring registers how it reads channels (`read_channel`); None without
    # Slack, or in a process that does not answer.
    channel_histories: ChannelHistories | None = None

    def work_added(self) -> None:
        """A message was recorded: wake this process's worker and the other processes'."""
        if self.worker is not None:
            self.worker.notify()
        if self.signals is not None:
            self.signals.work_added()

    async def check_database(self) -> None:
        await self.stores.check()

    async def check_knowledge(self) -> None:
        if self.knowledge is None:
            raise ConfigurationError(["the knowledge index is not open in this process"])
        await self.knowledge.ping()


@asynccontextmanager
async def sql_stores(settings: Settings) -> AsyncIterator[Stores]:
    """The stores on SQLite (migrated here) or PostgreSQL (migrated by `switchboard db
    upgrade`, the Procfile's release phase, before processes start). Turns are stored
    uncounted (tokens 0): the context counts them only when a long thread needs it."""
    async with AsyncExitStack() as stack:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        engine = create_engine(settings.sqlalchemy_url)
        stack.push_async_callback(engine.dispose)
        await prepare_schema(engine, settings)
        executor = create_executor(settings.sqlalchemy_url, engine)
        stack.push_async_callback(executor.aclose)
        sql = [
            SqlConversationStore(engine), SqlProfileStore(engine), SqlDeliveryLog(engine),
            SqlFeedbackStore(engine), SqlSentMessages(engine, executor), SqlTicketStore(engine),
            SqlConversationReferences(engine, executor),
        ]
        stack.push_async_callback(drain, *sql)
        conversations, profiles, deliveries, feedback, sent, tickets, references = sql

        async def check() -> None:
            async with engine.connect() as conn:
                await conn.execute(text("SELECT 1"))

        yield Stores(
            inbox=SqlInbox(executor, history=HISTORY_TURNS),
            conversations=conversations, profiles=profiles, deliveries=deliveries,
            feedback=feedback, sent_messages=sent, tickets=tickets, references=references,
            check=check, engine=engine, executor=executor, backlog=SqlInboxBacklog(engine),
            api_keys=SqlApiKeys(engine), rate_counts=SqlLimitStorage(engine),
            groups=SqlGroupStore(engine),
        )


@asynccontextmanager
async def bootstrap(
    settings: Settings,
    *,
    model: ChatModel | None = None,
    retriever: Retriever | None = None,
    open_knowledge: bool = True,
    answers: bool = True,
    receives: bool = True,
    listens: bool = False,
    stores: Stores | None = None,
    telemetry: Telemetry = NO_TELEMETRY,
) -> AsyncIterator[Switchboard]:
    """Build the assistant's services and close them in reverse order on exit.

    `answers=False` (the web role) builds only what receiving needs; `receives=False` (a
    worker) waits for no request. `listens`: this process is one of several sharing the
    database (a server role), so it hears of new work and of answers for its waiting
    requests from the others. Tests pass a fake `model`, `retriever` or `stores`, and get
    the real wiring around them. `telemetry` observes the inbox, the model, retrieval and
    each answer (the server passes its metrics).
    """
    async with AsyncExitStack() as stack:
        counter = None
        if answers:
            # The model's side (openai, tiktoken, Qdrant Edge) loads only where it is used.
            from bots import answering

            counter = answering.counter_for(model.name if model else settings.model)
        if stores is None:
            stores = await stack.enter_async_context(sql_stores(settings))
        tickets = TicketService(stores.tickets, agents=settings.ticket_agent_names,
                                groups=stores.groups)
        # Every channel and the worker reach the inbox through this one wrapper.
        inbox = ObservedInbox(stores.inbox, telemetry)
        profile = default_profile(settings.bot_name)
        signals = _signals(settings, stores) if listens else None
        streams = _streams(settings, stores) if listens and answers else None
        if streams is not None:
            stack.push_async_callback(streams.aclose)
        # Web and terminal answers go back to where their request waits.
        relay = ReplyRelay(signals)
        repliers = ChannelRepliers({"web": relay, "cli": relay})
        knowledge = ingestor = orchestrator = worker = histories = None
        built_model = model is None  # not a test's: titles may ask it too
        if answers:
            assert counter is not None
            if model is None:
                model = answering.chat_model(settings)
                aclose = getattr(model, "aclose", None)
                if aclose is not None:
                    stack.push_async_callback(aclose)
            if open_knowledge:
                embedder, dense_size = await answering.embedder_for(settings, stack)
                knowledge = answering.open_knowledge_index(
                    settings, embedder=embedder, dense_size=dense_size
                )
                stack.push_async_callback(knowledge.aclose)
                await knowledge.prepare()
                from bots.knowledge import ingestor_for

                ingestor = ingestor_for(knowledge, settings)
            if retriever is None:
                retriever = knowledge
            if retriever is not None:
                retriever = ObservedRetriever(retriever, telemetry)
            titles = Titles(
                model=model if built_model and settings.model_configured else None,
                # Under load, titles keep their first line: the model's time is the answers'.
                quiet=lambda: worker is None or worker.busy <= QUIET_ANSWERS,
            )
            model = ObservedModel(model, telemetry)
            histories = ChannelHistories() if settings.slack_enabled else None
            orchestrator = Orchestrator(
                inbox=inbox,
                assembler=ContextAssembler(
                    system_prompt=profile.system_prompt,
                    providers=[KnowledgeProvider(retriever)] if retriever is not None else [],
                    counter=counter,
                    budget_tokens=settings.context_tokens,
                ),
                model=model,
                tools=ToolRegistry([
                    get_user_info, *TICKET_TOOLS,
                    *([search_knowledge] if retriever is not None else []),
                    *([read_channel] if histories is not None else []),
                ]),
                services=ToolServices(
                    profiles=stores.profiles, knowledge=retriever, tickets=tickets,
                    channels=histories,
                ),
                max_tool_rounds=settings.max_tool_rounds,
                deadline=settings.answer_deadline,
                telemetry=telemetry,
                titles=titles,
            )
            worker = Worker(
                inbox=inbox, orchestrator=orchestrator, repliers=repliers,
                concurrency=settings.concurrency, lease=timedelta(seconds=settings.lease_seconds),
                telemetry=telemetry,
            )
            stack.push_async_callback(worker.aclose)
        if signals is not None:
            await signals.start(
                on_work=worker.notify if worker is not None else None,
                deliver=relay.deliver if receives else None,
                on_stop=worker.stop if worker is not None else None,
            )
            stack.push_async_callback(signals.aclose)

        def stop_requested(item_id: int) -> None:
            """This process's worker, if it writes that answer; else the others'."""
            here = worker is not None and worker.stop(item_id)
            if not here and signals is not None:
                signals.stop_requested(item_id)

        stopper = Stopper(inbox=inbox, conversations=stores.conversations,
                          admins=settings.admin_names, signal=stop_requested)
        yield Switchboard(
            settings=settings,
            profile=profile,
            stores=stores,
            inbox=inbox,
            conversations=stores.conversations,
            profiles=stores.profiles,
            deliveries=stores.deliveries,
            feedback=stores.feedback,
            sent_messages=stores.sent_messages,
            tickets=tickets,
            references=stores.references,
            api_keys=stores.api_keys,
            limiter=_limiter(settings, stores, telemetry),
            repliers=repliers,
            relay=relay,
            signals=signals,
            streams=streams,
            model=model,
            knowledge=knowledge,
            ingestor=ingestor,
            orchestrator=orchestrator,
            worker=worker,
            stopper=stopper,
            channel_histories=histories,
        )


QUIET_ANSWERS = 4  # answers in flight below which a new conversation's title asks the model


def _limiter(settings: Settings, stores: Stores, telemetry: Telemetry) -> RateLimiter | None:
    """Counted in SQL, so every process on the database shares one count (substituted
    stores without SQL count in this process)."""
    per_user, per_workspace = settings.user_rate_limit, settings.workspace_rate_limit
    if per_user is None and per_workspace is None:
        return None
    from limits.aio.storage import MemoryStorage

    from adapters.ratelimits.limiter import LimitsRateLimiter

    storage = stores.rate_counts if stores.rate_counts is not None else MemoryStorage()
    return ObservedLimiter(
        LimitsRateLimiter(storage, per_user=per_user, per_workspace=per_workspace), telemetry
    )


class Signals(RelayTransport, Protocol):
    """How processes sharing one database tell each other of new work and of answers."""

    async def start(
        self, *, on_work: Callable[[], None] | None = None,
        deliver: Callable[[str, ReplyEvent], None] | None = None,
        on_stop: Callable[[int], object] | None = None,
    ) -> None: ...

    def work_added(self) -> None: ...

    def stop_requested(self, item_id: int) -> None:
        """Tell the other processes' workers (PostgreSQL hears it from the unit itself)."""
        ...

    async def aclose(self) -> None: ...


def _signals(settings: Settings, stores: Stores) -> Signals | None:
    """PostgreSQL: LISTEN/NOTIFY (across machines). SQLite: Unix sockets next to the file
    (its processes share one machine)."""
    if settings.database_is_embedded:
        from adapters.sockets.signals import UnixSignals, run_dir

        return UnixSignals(run_dir(settings.data_dir))
    if stores.engine is None:
        return None
    from adapters.sql.notify import PgSignals

    return PgSignals(stores.engine)


def _streams(settings: Settings, stores: Stores) -> PgExclusive | None:
    """Several workers on PostgreSQL (across machines): one Teams stream per chat among
    them all. On SQLite one process answers, and its own bookkeeping is enough."""
    if settings.database_is_embedded or stores.engine is None:
        return None
    from adapters.sql.locks import PgExclusive

    return PgExclusive(stores.engine)


async def prepare_schema(engine: AsyncEngine, settings: Settings) -> None:
    if settings.database_is_embedded:
        await migrate.upgrade(engine)
    elif not await migrate.is_current(engine):
        raise ConfigurationError(
            [
                f"the database at {settings.describe_database()} is not migrated: "
                "run `switchboard db upgrade` first"
            ]
        )
