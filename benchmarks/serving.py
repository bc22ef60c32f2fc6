"""What the load benchmarks share: the bot under test started as one or more commands, each
its own process, and its CPU and memory read from /proc over every process of every
command's process tree (the processes themselves and all their descendants)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import statistics
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import aiohttp

BENCHMARKS = Path(__file__).parent.resolve()
CLI = [sys.executable, "-m", "bots.cli"]
SERVE = [*CLI, "serve"]
# Settings the server must not inherit from this shell: only the ones a benchmark gives count.
FOREIGN_ENV = ("SLACK_", "SWITCHBOARD_", "OPENAI_", "QDRANT_", "DATABASE_", "MICROSOFT_",
               "MicrosoftApp", "TO_BOT_FROM_", "TO_CHANNEL_FROM_", "TEAMS_", "CHANNEL_SERVICE",
               "VALIDATE_AUTHORITY", "OAUTH_URL", "REQUESTS_CA_BUNDLE", "DATA_DIR")
CLOCK_TICK = os.sysconf("SC_CLK_TCK")
SAMPLE_EVERY = 0.5  # seconds between samples of the process trees
READY_WITHIN = 60.0


@dataclass(frozen=True)
class Command:
    """One top-level process of the bot. The `http` one gets `--host 127.0.0.1 --port P`
    and is ready when `GET /readyz` answers 200."""

    name: str
    argv: tuple[str, ...]
    http: bool = False


# What runs as "switchboard": one command that may start worker children, or the web
# process and the worker as two commands.
LAYOUTS: dict[str, tuple[Command, ...]] = {
    "all": (Command("serve", (*SERVE,), http=True),),
    "split": (Command("web", (*SERVE, "--role", "web"), http=True),
              Command("worker", (*CLI, "worker"))),
}
YARDSTICK = (Command("yardstick", (sys.executable, str(BENCHMARKS / "yardstick_bolt.py")),
                     http=True),)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def proc_stat(pid: int) -> tuple[float, float, float]:
    """(peak RSS MB, current RSS MB, CPU seconds) of one live process, from /proc."""
    read = _read(pid)
    if read is None:
        raise ProcessLookupError(pid)
    return read.hwm, read.rss, read.own


@dataclass(frozen=True)
class _Stat:
    ppid: int
    started: int  # start time in clock ticks after boot: (pid, started) names a process
    own: float  # CPU seconds, utime + stime
    reaped: float  # CPU seconds of the children it has waited for, cutime + cstime
    hwm: float  # VmHWM MB (0 for a zombie)
    rss: float  # VmRSS MB (0 for a zombie)
    zombie: bool


def _read(pid: int) -> _Stat | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        status = Path(f"/proc/{pid}/status").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    values = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    hwm, rss = (int(values[k].split()[0]) / 1024 if k in values else 0.0
                for k in ("VmHWM", "VmRSS"))  # a zombie has none left
    utime, stime, cutime, cstime = (int(fields[i]) / CLOCK_TICK for i in (11, 12, 13, 14))
    return _Stat(ppid=int(fields[1]), started=int(fields[19]), own=utime + stime,
                 reaped=cutime + cstime, hwm=hwm, rss=rss, zombie=fields[0] == "Z")


def _parents() -> dict[int, int]:
    """pid → ppid of every process on the machine."""
    found = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                text = Path(entry.path, "stat").read_text()
                found[int(entry.name)] = int(text.rsplit(")", 1)[1].split()[1])
    return found


def _children(pid: int) -> list[int] | None:
    """The children of a process, from /proc/<pid>/task/*/children (a child belongs to the
    thread that forked it); None where the kernel has no such files."""
    found: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for task in tasks:
        try:
            found += map(int, Path(f"/proc/{pid}/task/{task}/children").read_text().split())
        except FileNotFoundError:
            if not Path(f"/proc/{pid}/task/{task}").exists():
                continue  # the thread ended
            return None
        except OSError:
            continue
    return found


def descendants(roots: Sequence[int]) -> set[int]:
    """The roots and every process below them."""
    children: dict[int, list[int]] | None = None  # from a scan of /proc, if needed
    found, todo = set(), list(roots)
    while todo:
        pid = todo.pop()
        if pid in found:
            continue
        found.add(pid)
        below = _children(pid) if children is None else None
        if below is None:
            if children is None:
                children = {}
                for child, ppid in _parents().items():
                    children.setdefault(ppid, []).append(child)
            below = children.get(pid, [])
        todo.extend(below)
    return found


@dataclass(frozen=True)
class Usage:
    """What the process trees had used at one moment. Subtract two for a period."""

    cpu_s: float  # user + system CPU seconds of every process of the trees, ever
    peak_rss_mb: float  # sum of each process's VmHWM: an upper bound of the simultaneous peak
    rss_mb: float  # sum of VmRSS of the processes alive now (seen in two samples or more)
    processes: int  # processes seen so far
    alive: int
    fleeting: int  # processes seen in one sample only and gone: not in peak_rss_mb


Key = tuple[int, int]  # (pid, start time)


@dataclass
class TreeMeter:
    """CPU and peak memory of every process in the trees below `roots` (the roots included).

    CPU: /proc forgets a process's utime + stime once its parent reaps it; they move to the
    parent's cutime + cstime then. So the meter samples the trees (every SAMPLE_EVERY seconds
    while `serve` runs, and whenever asked), keeps the last values seen of each process, and
    counts utime + stime + cutime + cstime (CPU of the children it reaped) of every process
    seen, the last values seen for an exited one, minus those of each exited process whose
    parent is in the trees: its final values are in that parent's cutime + cstime now. So
    children are counted in full even when they exit between two samples or live shorter
    than one; only a process reaped by something outside the trees (an orphan re-parented
    to init) loses what it used after its last sample.

    Memory: the sum of each process's VmHWM as last seen (exec starts a new one), counting
    only processes seen in two samples or more. A helper that lives for milliseconds (the
    openai SDK runs `uname -p` and `ldconfig -p` once) is not counted: caught between
    (v)fork and exec it shows its parent's memory as its own."""

    roots: list[int]
    last: dict[Key, _Stat] = field(default_factory=dict)
    samples: Counter[Key] = field(default_factory=Counter)

    def sample(self) -> Usage:
        tree = descendants(self.roots)
        alive: set[Key] = set()
        for pid in tree | {pid for pid, _ in self.last}:  # orphans re-parented away stay known
            read = _read(pid)
            if read is None:
                continue
            key = (pid, read.started)
            if pid not in tree and key not in self.last:
                continue  # a known pid reused by a process outside the trees
            if read.zombie and key in self.last:  # it has no memory left: keep its peak
                read = replace(read, hwm=self.last[key].hwm)
            alive.add(key)
            self.last[key] = read
            self.samples[key] += 1
        started = {pid: stat.started for (pid, _), stat in self.last.items()}
        cpu = sum(stat.own + stat.reaped for stat in self.last.values())
        cpu -= sum(stat.own + stat.reaped for key, stat in self.last.items()  # in the parent's
                   if key not in alive and (stat.ppid, started.get(stat.ppid)) in self.last)
        lasting = [stat.hwm for key, stat in self.last.items() if self.samples[key] > 1]
        fleeting = sum(1 for key in self.last if self.samples[key] == 1 and key not in alive)
        return Usage(cpu_s=cpu, peak_rss_mb=sum(lasting),
                     rss_mb=sum(self.last[key].rss for key in alive if self.samples[key] > 1),
                     processes=len(self.last), alive=len(alive), fleeting=fleeting)

    def alive(self) -> list[int]:
        """Pids of the processes seen that still run (same pid, same start time; zombies
        have ended)."""
        found = []
        for pid, started in self.last:
            read = _read(pid)
            if read is not None and read.started == started and not read.zombie:
                found.append(pid)
        return found


@dataclass
class Served:
    """The running commands of a bot: `url` is the HTTP one's base URL."""

    commands: tuple[Command, ...]
    processes: list[asyncio.subprocess.Process]
    url: str
    stderr_paths: list[Path]
    meter: TreeMeter
    left_behind: int = 0  # processes of the trees still running once the commands had exited

    @property
    def process(self) -> asyncio.subprocess.Process:
        return self.processes[0]

    def sample(self) -> Usage:
        return self.meter.sample()

    def check_alive(self) -> None:
        for command, process in zip(self.commands, self.processes, strict=True):
            if process.returncode is not None:
                raise RuntimeError(f"{command.name} ({' '.join(command.argv[1:])}) exited "
                                   f"with {process.returncode}")

    def problems(self) -> list[str]:
        """Warning, error and traceback lines of every command's stderr."""
        return [f"{command.name}: {line}"
                for command, path in zip(self.commands, self.stderr_paths, strict=True)
                for line in path.read_text(errors="replace").splitlines()
                if any(word in line for word in ("WARNING", "ERROR", "Traceback"))]


def tail(path: Path, lines: int = 30) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def pct(values: list[float], p: int) -> float:
    if len(values) < 2:
        return values[0] if values else float("nan")
    return statistics.quantiles(values, n=100, method="inclusive")[p - 1]


@contextlib.asynccontextmanager
async def serve(
    commands: Sequence[Command], env: Mapping[str, str], workdir: Path
) -> AsyncIterator[Served]:
    """Each command in its own process (its own session), all with `env` over a clean copy of
    this one's environment and one DATA_DIR; yields once the HTTP one answers `/readyz` and
    the others still run. The process trees are sampled every SAMPLE_EVERY seconds until the
    commands stop; on leaving, each command gets SIGTERM (SIGKILL after 10 s), and whatever
    of their trees still runs after that is killed."""
    if sum(command.http for command in commands) != 1:
        raise ValueError("exactly one command must serve HTTP")
    port = free_port()
    clean = {k: v for k, v in os.environ.items() if not k.startswith(FOREIGN_ENV)}
    full_env = {**clean, "DATA_DIR": str(workdir / "data"), **env}
    processes: list[asyncio.subprocess.Process] = []
    paths = [workdir / f"{command.name}.stderr.log" for command in commands]
    meter = TreeMeter([])
    sampler: asyncio.Task[None] | None = None
    served: Served | None = None
    try:
        for command, path in zip(commands, paths, strict=True):
            argv = [*command.argv, *(("--host", "127.0.0.1", "--port", str(port))
                                     if command.http else ())]
            with path.open("wb") as stderr:
                processes.append(await asyncio.create_subprocess_exec(
                    *argv, env=full_env, cwd=workdir, start_new_session=True,
                    stdout=asyncio.subprocess.DEVNULL, stderr=stderr,
                ))
            meter.roots.append(processes[-1].pid)
        sampler = asyncio.create_task(_sample_forever(meter))
        url = f"http://127.0.0.1:{port}"
        served = Served(tuple(commands), processes, url, paths, meter)
        await _wait_ready(served)
        yield served
    except BaseException:
        for command, path in zip(commands, paths, strict=True):
            if path.exists():
                print(f"--- {command.name} stderr (tail) ---\n{tail(path)}", file=sys.stderr)
        raise
    finally:
        left_behind = await _stop(processes, meter)
        if served is not None:
            served.left_behind = left_behind
        if sampler is not None:
            sampler.cancel()
            await asyncio.gather(sampler, return_exceptions=True)


async def _sample_forever(meter: TreeMeter) -> None:
    while True:
        meter.sample()
        await asyncio.sleep(SAMPLE_EVERY)


async def _wait_ready(served: Served) -> None:
    async with aiohttp.ClientSession() as session:
        deadline = time.monotonic() + READY_WITHIN
        while True:
            served.check_alive()
            with contextlib.suppress(aiohttp.ClientError):
                async with session.get(f"{served.url}/readyz") as r:
                    if r.status == 200:
                        break
            if time.monotonic() > deadline:
                raise RuntimeError(f"not ready (/readyz) within {READY_WITHIN:.0f} s")
            await asyncio.sleep(0.1)
    served.check_alive()


async def _stop(processes: list[asyncio.subprocess.Process], meter: TreeMeter) -> int:
    """SIGTERM to each command (SIGKILL after 10 s); then SIGTERM to whatever of their trees
    or their sessions (each command starts one) still runs, SIGKILL after 5 s. Returns how
    many processes were left behind."""
    with contextlib.suppress(ProcessLookupError):
        meter.sample()  # the trees as they are now, children included
    for process in processes:
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.terminate()
    for process in processes:
        try:
            await asyncio.wait_for(process.wait(), 10)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
    sessions = {process.pid for process in processes}

    def still_running() -> set[int]:
        return set(meter.alive()) | _in_sessions(sessions)

    left = still_running()
    for sig, grace in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 1.0)):
        for pid in still_running():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)
        deadline = time.monotonic() + grace
        while still_running() and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
    return len(left)


def _in_sessions(sessions: set[int]) -> set[int]:
    """Live processes (not zombies) whose session id is one of `sessions`."""
    found = set()
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                fields = Path(entry.path, "stat").read_text().rsplit(")", 1)[1].split()
                if fields[0] != "Z" and int(fields[3]) in sessions:
                    found.add(int(entry.name))
    return found


@contextlib.asynccontextmanager
async def switchboard_serve(
    env: Mapping[str, str], workdir: Path, layout: str = "all"
) -> AsyncIterator[tuple[asyncio.subprocess.Process, str, Path]]:
    """`switchboard serve` (or the commands of another layout) ready; yields (the HTTP
    process, base URL, its stderr file), as before the process-tree measurement."""
    async with serve(LAYOUTS[layout], env, workdir) as served:
        yield served.process, served.url, served.stderr_paths[0]


@contextlib.asynccontextmanager
async def profiled(served: Served, directory: Path | None, label: str) -> AsyncIterator[None]:
    """With a directory: py-spy (`pip install py-spy`; not a project dependency) samples
    every process of the service while the block runs, one folded-stacks file each
    (`<label>-<command>-<pid>.txt`), for finding where the CPU goes."""
    if directory is None:
        yield
        return
    directory.mkdir(parents=True, exist_ok=True)
    spies = []
    for command, process in zip(served.commands, served.processes, strict=True):
        for pid in sorted(descendants([process.pid])):
            out = directory / f"{label}-{command.name}-{pid}.txt"
            spies.append(await asyncio.create_subprocess_exec(
                "py-spy", "record", "--pid", str(pid), "--output", str(out), "--format", "raw",
                "--rate", "250", "--nonblocking",
                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
            ))
    try:
        yield
    finally:
        for spy in spies:
            spy.send_signal(signal.SIGINT)
        await asyncio.gather(*(spy.wait() for spy in spies))
