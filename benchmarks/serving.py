"""What the load benchmarks share: `switchboard serve` in its own process, and reading
its memory and CPU from /proc."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import statistics
import sys
import time
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

import aiohttp

SERVE = [sys.executable, "-m", "bots.cli", "serve"]
# Settings the server must not inherit from this shell: only the ones a benchmark gives count.
FOREIGN_ENV = ("SLACK_", "SWITCHBOARD_", "OPENAI_", "QDRANT_", "DATABASE_", "MICROSOFT_",
               "MicrosoftApp", "TO_BOT_FROM_", "TO_CHANNEL_FROM_", "TEAMS_", "CHANNEL_SERVICE",
               "VALIDATE_AUTHORITY", "OAUTH_URL", "REQUESTS_CA_BUNDLE", "DATA_DIR")

Served = tuple[asyncio.subprocess.Process, str, Path]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def proc_stat(pid: int) -> tuple[float, float, float]:
    """(peak RSS MB, current RSS MB, CPU seconds) of a live process, from /proc."""
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    status = dict(line.split(":", 1) for line in lines)
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime
    return int(status["VmHWM"].split()[0]) / 1024, int(status["VmRSS"].split()[0]) / 1024, cpu


def tail(path: Path, lines: int = 30) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def pct(values: list[float], p: int) -> float:
    if len(values) < 2:
        return values[0] if values else float("nan")
    return statistics.quantiles(values, n=100, method="inclusive")[p - 1]


@contextlib.asynccontextmanager
async def switchboard_serve(env: Mapping[str, str], workdir: Path) -> AsyncIterator[Served]:
    """`switchboard serve` in its own process with `env` over a clean copy of this one's,
    ready (`/readyz`); yields (process, base URL, stderr file) and stops it after."""
    port = free_port()
    clean = {k: v for k, v in os.environ.items() if not k.startswith(FOREIGN_ENV)}
    stderr_path = workdir / "stderr.log"
    with stderr_path.open("wb") as stderr:
        server = await asyncio.create_subprocess_exec(
            *SERVE, "--host", "127.0.0.1", "--port", str(port),
            env={**clean, "DATA_DIR": str(workdir / "data"), **env}, cwd=workdir,
            stdout=asyncio.subprocess.DEVNULL, stderr=stderr,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as session:
            deadline = time.monotonic() + 60
            while True:
                if server.returncode is not None:
                    raise RuntimeError(f"switchboard serve exited with {server.returncode}")
                with contextlib.suppress(aiohttp.ClientError):
                    async with session.get(f"{url}/readyz") as r:
                        if r.status == 200:
                            break
                if time.monotonic() > deadline:
                    raise RuntimeError("switchboard serve was not ready within 60 s")
                await asyncio.sleep(0.1)
        yield server, url, stderr_path
    except BaseException:
        print(f"--- switchboard serve stderr (tail) ---\n{tail(stderr_path)}", file=sys.stderr)
        raise
    finally:
        if server.returncode is None:
            server.terminate()
            try:
                await asyncio.wait_for(server.wait(), 10)
            except TimeoutError:
                server.kill()
                await server.wait()
