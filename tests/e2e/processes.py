"""Switchboard as real processes: `switchboard serve --role web`, `switchboard worker`,
`switchboard db upgrade`, each started from this test process with an explicit
environment, its stderr in a file, stopped (or killed) for certain when the test ends.

    with Processes(tmp_path, env) as procs:        # or the `processes` fixture of a test
        web = procs.start("web", "serve", "--role", "web", http=True)
        worker = procs.start("worker", "worker", env={"OPENAI_BASE_URL": ...})
        await procs.ready(web)                      # GET /readyz answers 200
        ...
        assert await worker.stop() in (0, -signal.SIGTERM)

Every child runs in its own session (process group), so nothing it starts survives it:
`close()` sends SIGTERM to what still runs, SIGKILL after a grace period, then SIGKILL to
whatever is left in the children's process groups. `report()` is the tail of every
child's stderr; print it in a fixture's teardown and pytest shows it when the test fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import aiohttp
from sqlalchemy import text

from adapters.sql.engine import create_engine
from tests.e2e.slack.conftest import mention, sign
from tests.e2e.teams.conftest import APP_ID, APP_SECRET, TENANT
from tests.fakes.bot_framework import ChannelIdentity, FakeLogin
from tests.fakes.openai_server import FakeOpenAI, Reply

REPOSITORY = Path(__file__).parents[2]
CLI = (sys.executable, "-m", "bots.cli")
# Settings a child must not inherit from this process: only those a test gives count.
FOREIGN_ENV = ("SLACK_", "SWITCHBOARD_", "OPENAI_", "QDRANT_", "DATABASE_", "MICROSOFT_",
               "MicrosoftApp", "TO_BOT_FROM_", "TO_CHANNEL_FROM_", "TEAMS_", "CHANNEL_SERVICE",
               "VALIDATE_AUTHORITY", "OAUTH_URL", "REQUESTS_CA_BUNDLE", "DATA_DIR", "HOST",
               "PORT", "TIKTOKEN_CACHE_DIR", "LOG_FORMAT", "LOG_CONTENT")
READY_WITHIN = 60.0  # seconds for `/readyz` to answer 200 (start-up takes ~2 s)
STOP_WITHIN = 15.0  # seconds from SIGTERM to exit before a child is killed


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def clean_env(settings: Mapping[str, str]) -> dict[str, str]:
    """This process's environment without any Switchboard or channel setting, plus
    `settings`."""
    inherited = {k: v for k, v in os.environ.items() if not k.startswith(FOREIGN_ENV)}
    return {**inherited, "PYTHONUNBUFFERED": "1", **settings}


def tail(path: Path, lines: int = 40) -> str:
    if not path.exists():
        return "(no stderr file)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


@dataclass
class Child:
    """One running command. `url` is set for a command started with `http=True`."""

    name: str
    argv: tuple[str, ...]
    popen: subprocess.Popen[bytes]
    stderr_path: Path
    url: str | None = None
    stopped: bool = False  # this process stopped or killed it: its exit is no surprise

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def returncode(self) -> int | None:
        """None while it runs; -N when signal N ended it."""
        return self.popen.poll()

    @property
    def running(self) -> bool:
        return self.popen.poll() is None

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def tail(self, lines: int = 40) -> str:
        return tail(self.stderr_path, lines)

    def describe(self) -> str:
        state = "running" if self.running else f"exited with {self.returncode}"
        return f"{self.name} (pid {self.pid}, {' '.join(self.argv[len(CLI):])}) {state}"

    @property
    def command(self) -> str:
        """The `switchboard` command it runs: serve, worker, db…"""
        return self.argv[len(CLI)]

    def send(self, signum: int) -> None:
        if signum in (signal.SIGTERM, signal.SIGINT, signal.SIGKILL):
            self.stopped = True
        if self.running:
            with contextlib.suppress(ProcessLookupError):
                self.popen.send_signal(signum)

    async def wait(self, timeout: float) -> int:
        """Its exit code once it has exited; TimeoutError if it still runs after `timeout`."""
        deadline = time.monotonic() + timeout
        while (code := self.popen.poll()) is None:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.describe()} after {timeout:.0f} s")
            await asyncio.sleep(0.05)
        return code

    async def stop(self, timeout: float = STOP_WITHIN) -> int:
        """SIGTERM, then its exit code (0, or -15 if the signal ended it). TimeoutError
        (and SIGKILL) if it does not exit within `timeout`."""
        self.send(signal.SIGTERM)
        try:
            return await self.wait(timeout)
        except TimeoutError:
            self.kill()
            raise

    def kill(self) -> int:
        """SIGKILL, as a crash would: no clean-up of any kind. Returns the exit code."""
        self.send(signal.SIGKILL)
        return self.popen.wait()


@dataclass
class Processes:
    """The children of one test: each its own session, the same base environment, one
    working directory (their stderr files go there too)."""

    workdir: Path
    env: Mapping[str, str] = field(default_factory=dict)
    children: list[Child] = field(default_factory=list)

    def start(
        self, name: str, *args: str, env: Mapping[str, str] | None = None, http: bool = False
    ) -> Child:
        """`python -m bots.cli ARGS…` with `self.env`, then `env`, over a clean copy of this
        process's environment. `http=True` adds `--host 127.0.0.1 --port <free port>`."""
        url = None
        if http:
            port = free_port()
            args = (*args, "--host", "127.0.0.1", "--port", str(port))
            url = f"http://127.0.0.1:{port}"
        argv = (*CLI, *args)
        same = sum(1 for c in self.children if c.name == name or c.name.startswith(f"{name}-"))
        label = name if same == 0 else f"{name}-{same + 1}"
        path = self.workdir / f"{label}.stderr.log"
        self.workdir.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as stderr:
            popen = subprocess.Popen(
                argv, env=clean_env({**self.env, **(env or {})}), cwd=REPOSITORY,
                stdin=subprocess.DEVNULL, stdout=stderr, stderr=stderr,
                start_new_session=True,
            )
        child = Child(label, argv, popen, path, url)
        self.children.append(child)
        return child

    async def run(self, name: str, *args: str, env: Mapping[str, str] | None = None,
                  timeout: float = 60.0) -> Child:
        """A command that ends by itself (`db upgrade`); AssertionError unless it exits 0."""
        child = self.start(name, *args, env=env)
        code = await child.wait(timeout)
        assert code == 0, f"{child.describe()}:\n{child.tail()}"
        return child

    async def ready(self, web: Child, timeout: float = READY_WITHIN) -> None:
        """Until `GET /readyz` answers 200; fails at once when any child has exited."""
        assert web.url is not None, f"{web.name} serves no HTTP"
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession() as session:
            while True:
                self.check_running()
                with contextlib.suppress(aiohttp.ClientError, asyncio.TimeoutError):
                    async with session.get(f"{web.url}/readyz",
                                           timeout=aiohttp.ClientTimeout(total=5)) as r:
                        if r.status == 200:
                            return
                if time.monotonic() > deadline:
                    raise AssertionError(f"{web.describe()}: /readyz not 200 within "
                                         f"{timeout:.0f} s\n{web.tail()}")
                await asyncio.sleep(0.1)

    def check_running(self) -> None:
        """AssertionError naming the first server or worker that has exited unasked."""
        for child in self.children:
            if child.command in ("serve", "worker") and not child.stopped and not child.running:
                raise AssertionError(f"{child.describe()}:\n{child.tail()}")

    def close(self, grace: float = STOP_WITHIN) -> None:
        """SIGTERM to every child still running, SIGKILL after `grace`; then SIGKILL to
        anything left in their process groups (each child leads its own)."""
        for child in self.children:
            child.send(signal.SIGTERM)
        deadline = time.monotonic() + grace
        for child in self.children:
            try:
                child.popen.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.kill()
        for child in self.children:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(child.pid, signal.SIGKILL)  # only its own group: pgid == its pid

    def report(self, lines: int = 40) -> str:
        return "\n".join(f"--- {child.describe()}: stderr (last {lines} lines) ---\n"
                         f"{child.tail(lines)}" for child in self.children)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
        if error is not None:
            print(self.report(), file=sys.stderr)


async def inbox_settled(database_url: str, timeout: float = 30.0) -> dict[str, int]:
    """Wait until no inbox item is pending, being answered or being delivered (whichever
    process holds it); returns the number of items in each status."""
    engine = create_engine(database_url)
    try:
        deadline = time.monotonic() + timeout
        while True:
            async with engine.connect() as conn:
                rows = (await conn.execute(
                    text("SELECT status, count(*) FROM inbox GROUP BY status")
                )).all()
            counts = {str(status): int(n) for status, n in rows}
            if not any(counts.get(s) for s in ("pending", "processing", "answered")):
                return counts
            if time.monotonic() > deadline:
                raise AssertionError(f"the inbox did not settle in {timeout:.0f} s: {counts}")
            await asyncio.sleep(0.05)
    finally:
        await engine.dispose()


# ----- a server under test and its inbox -----------------------------------------------------

SHORT_LEASE = "3"  # SWITCHBOARD_LEASE_SECONDS' minimum: a killed turn is retried ~3 s later


def database(tmp_path: Path) -> str:
    """The URL of the SQLite database of the `procs` fixture's processes (DATA_DIR)."""
    return f"sqlite+aiosqlite:///{tmp_path / 'data' / 'switchboard.db'}"


async def serve(procs: Processes, grace: float, env: Mapping[str, str] | None = None) -> Child:
    """`switchboard serve` (every role), once ready; a killed turn is retried ~3 s later."""
    child = procs.start("serve", "serve", http=True,
                        env={"SWITCHBOARD_SHUTDOWN_GRACE": str(grace),
                             "SWITCHBOARD_LEASE_SECONDS": SHORT_LEASE, **(env or {})})
    await procs.ready(child)
    return child


def teams_env(identity: ChannelIdentity, login: FakeLogin, *, app: str = APP_ID,
              secret: str = APP_SECRET, tenant: str = TENANT) -> dict[str, str]:
    """Settings for Teams against the fakes: the channel's keys, Azure AD over TLS, the
    connector on loopback; the bot is `app` (registered with `login` under `secret`)."""
    return {
        "MicrosoftAppId": app,
        "MicrosoftAppPassword": secret,
        "MicrosoftAppTenantId": tenant,
        "TO_BOT_FROM_CHANNEL_OPENID_METADATA_URL": identity.metadata_url,
        "TO_CHANNEL_FROM_BOT_LOGIN_URL": login.authority(tenant),
        "VALIDATE_AUTHORITY": "false",
        "TEAMS_SERVICE_URL_ALLOWLIST": "127.0.0.1",
        "REQUESTS_CA_BUNDLE": login.ca_file,  # MSAL speaks HTTPS only: trust the fake's CA
    }


async def post_slack(url: str, body: dict[str, Any]) -> aiohttp.ClientResponse:
    raw = json.dumps(body)
    async with aiohttp.ClientSession() as session, session.post(
        f"{url}/slack/events", data=raw.encode(),
        headers={"Content-Type": "application/json", **sign(raw)},
    ) as response:
        await response.read()
        return response


async def post_teams(url: str, identity: ChannelIdentity, body: dict[str, Any]) -> int:
    token = identity.token(app_id=APP_ID, service_url=body["serviceUrl"])
    async with aiohttp.ClientSession() as session, session.post(
        f"{url}/api/messages", data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json; charset=utf-8",
                 "Authorization": f"Bearer {token}"},
    ) as response:
        await response.read()
        return response.status


async def killed_mid_answer(procs: Processes, llm: FakeOpenAI, database_url: str, *, ts: str,
                            question: str = "tell me") -> tuple[str, asyncio.Event]:
    """`serve` starts answering a Slack mention in thread `ts` with a model that stops
    after its first piece (until the returned gate is set), and is SIGKILLed once the
    message showing the answer is noted (a crash in the few ms before would still leave
    it cut off). Returns the noted id and the gate."""
    gate = asyncio.Event()
    llm.script(Reply("A first attempt that never ends", gate=gate))
    first = await serve(procs, grace=1)
    assert first.url is not None
    await post_slack(first.url, mention(question, ts=ts, event_id="Ev1"))
    noted = await reply_noted(database_url)
    first.kill()
    return noted, gate


async def reply_noted(url: str) -> str:
    """The id of the message showing the (only) inbox item's answer, once it is noted."""
    engine = create_engine(url)
    try:
        for _ in range(400):
            async with engine.connect() as conn:
                noted = (await conn.execute(text("SELECT reply_id FROM inbox"))).scalar()
            if noted:
                return str(noted)
            await asyncio.sleep(0.025)
    finally:
        await engine.dispose()
    raise AssertionError("the stream's ts was never noted")


async def statuses(url: str) -> dict[str, int]:
    """The number of inbox items in each status, now."""
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            rows = (await conn.execute(
                text("SELECT status, count(*) FROM inbox GROUP BY status"))).all()
    finally:
        await engine.dispose()
    return {str(status): int(n) for status, n in rows}


# ----- a PostgreSQL server of one's own ------------------------------------------------------


@dataclass
class Cluster:
    """A throw-away PostgreSQL cluster in a temporary directory, run with pg_ctl (as the
    `postgres` user when this process is root: PostgreSQL refuses to run as root), for
    what needs to stop and start the database. `create()` raises KeyError when running as
    root with no `postgres` user, FileNotFoundError without the server binaries."""

    home: Path
    port: int
    as_user: tuple[str, ...]

    @property
    def data(self) -> Path:
        return self.home / "data"

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    @classmethod
    def create(cls) -> Cluster:
        if shutil.which("pg_ctl") is None or shutil.which("initdb") is None:
            raise FileNotFoundError("no PostgreSQL server binaries (pg_ctl, initdb)")
        as_user: tuple[str, ...] = ()
        if os.geteuid() == 0:
            pwd.getpwnam("postgres")
            as_user = ("runuser", "-u", "postgres", "--")
        # Not under pytest's tmp_path: the postgres user may not traverse root's directory.
        home = Path(tempfile.mkdtemp(prefix="switchboard-pg-"))
        if as_user:
            shutil.chown(home, "postgres")
        cluster = cls(home, free_port(), as_user)
        subprocess.run([*as_user, "initdb", "-D", str(cluster.data), "-A", "trust", "-U",
                        "postgres"], check=True, capture_output=True, timeout=120)
        return cluster

    def pg_ctl(self, *args: str) -> None:
        subprocess.run([*self.as_user, "pg_ctl", "-D", str(self.data), *args], check=True,
                       capture_output=True, timeout=60)

    def start(self) -> None:
        options = f"-p {self.port} -k {self.data} -c listen_addresses=127.0.0.1"
        self.pg_ctl("-o", options, "-l", str(self.home / "server.log"), "-w", "start")

    def stop(self, mode: str = "fast") -> None:
        self.pg_ctl("-m", mode, "-w", "stop")

    def remove(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError, subprocess.TimeoutExpired):
            self.stop("immediate")
        shutil.rmtree(self.home, ignore_errors=True)
