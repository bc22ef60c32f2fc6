"""`switchboard doctor`: what is configured, what is missing, and whether it answers."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal, TextIO

from sqlalchemy import text

from adapters.llm.openai_model import create_chat_model
from adapters.sql import migrate
from adapters.sql.engine import create_engine
from bots.answering import open_knowledge_index
from bots.settings import Settings
from core.errors import ConfigurationError

State = Literal["ok", "missing", "broken"]


@dataclass(frozen=True, kw_only=True, slots=True)
class Check:
    area: str
    state: State
    detail: str


async def diagnose(settings: Settings) -> list[Check]:
    return [
        _web(settings),
        Check(area="terminal", state="ok", detail="`switchboard chat`"),
        *await asyncio.gather(
            _database(settings), _knowledge(settings), _model(settings), _slack(settings),
            _teams(settings),
        ),
    ]


def report(checks: list[Check], out: TextIO) -> int:
    marks = {"ok": "ok     ", "missing": "missing", "broken": "BROKEN "}
    for c in checks:
        out.write(f"{marks[c.state]}  {c.area:<10} {c.detail}\n")
    return 1 if any(c.state == "broken" for c in checks) else 0


def _web(settings: Settings) -> Check:
    url = f"http://{settings.host}:{settings.port}/"
    users = len(settings.api_key_users)
    access = f"API keys for {users} user(s)" if users else "no API keys: answers loopback clients only"
    return Check(area="web", state="ok", detail=f"{url} ({access})")


async def _probe(area: str, describe: str, probe: Callable[[], Awaitable[str]]) -> Check:
    try:
        async with asyncio.timeout(10):
            extra = await probe()
    except ConfigurationError as e:
        return Check(area=area, state="broken", detail=f"{describe}: {'; '.join(e.problems)}")
    except Exception as e:
        return Check(area=area, state="broken", detail=f"{describe}: unreachable ({type(e).__name__}: {e})")
    return Check(area=area, state="ok", detail=f"{describe}{extra}")


async def _database(settings: Settings) -> Check:
    async def probe() -> str:
        engine = create_engine(settings.sqlalchemy_url)
        try:
            async with engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
            if await migrate.is_current(engine):
                return ", schema current"
            if settings.database_is_embedded:
                return ", migrated on start"
            raise ConfigurationError(["schema is not current: run `switchboard db upgrade`"])
        finally:
            await engine.dispose()

    return await _probe("database", settings.describe_database(), probe)


async def _knowledge(settings: Settings) -> Check:
    async def probe() -> str:
        try:
            index = open_knowledge_index(settings)
        except ConfigurationError as e:
            if settings.qdrant_url is None and "WAL" in str(e):
                return " (open in a running Switchboard process)"
            raise
        try:
            await index.ping()
            passages = await index.count()
        finally:
            await index.aclose()
        return f", {passages} passages" if passages else ", empty: `switchboard ingest PATH`"

    where = settings.qdrant_url or f"embedded Qdrant Edge at {settings.qdrant_path}"
    return await _probe("qdrant", where, probe)


async def _model(settings: Settings) -> Check:
    if not settings.model_configured:
        return Check(
            area="model",
            state="missing",
            detail="set OPENAI_API_KEY (or OPENAI_BASE_URL for a local server); answering offline",
        )
    key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else None
    model = create_chat_model(
        model=settings.model, api_key=key, base_url=settings.openai_base_url,
        timeout=10, max_retries=0,
    )

    async def probe() -> str:
        try:
            await model.ping()
        finally:
            await model.aclose()
        return ""

    return await _probe("model", f"{settings.model} at {settings.openai_base_url or 'OpenAI'}", probe)


async def _slack(settings: Settings) -> Check:
    if not settings.slack_enabled:
        return Check(area="slack", state="missing",
                     detail="set SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET to answer in Slack")
    # slack_sdk loads only when Slack is configured.
    from bots.slack import check_slack

    return await _probe("slack", f"Slack API at {settings.slack_api_url}",
                        lambda: check_slack(settings))


async def _teams(settings: Settings) -> Check:
    if not settings.teams_enabled:
        return Check(area="teams", state="missing",
                     detail="set MicrosoftAppId (and its password and tenant) to answer in Teams")
    # botbuilder loads only when Teams is configured.
    from bots.teams import check_teams

    return await _probe("teams", f"app {settings.microsoft_app_id}", lambda: check_teams(settings))
