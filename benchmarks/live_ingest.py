"""From `switchboard ingest` to a cited answer, while `switchboard serve` runs (issue 14).

Starts `switchboard serve` on the embedded defaults (SQLite, Qdrant Edge, no model: offline
answers cite what retrieval found) in a fresh data directory, fills its index with a tree
of background documents through the running server, then, for each round, writes one new
Markdown document with a unique code, runs `switchboard ingest FILE` as a second process
(as a person would), and asks `POST /api/v1/chat` for the code until the new document is
the first citation. Timed per round:

- `cli`: the ingest command from start to exit (Python start-up, the control socket, the
  ingest itself);
- `cited`: from the command's start to the first answer citing the document;
- `api`: the same through `POST /api/v1/ingest` alone (no process start), to the report.

    .venv/bin/python benchmarks/live_ingest.py                 # 20 rounds, 5,000 documents
    .venv/bin/python benchmarks/live_ingest.py --background 0 --rounds 5

Target (issue 14): a document ingested into a running assistant is cited in an answer
within 5 s, with no restart. Results: benchmarks/README.md.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).parent.resolve()
sys.path[:] = [str(HERE.parent)] + [p for p in sys.path if Path(p or ".").resolve() != HERE]
# ruff: noqa: E402 - sys.path is set up before the imports that depend on it

import argparse
import asyncio
import os
import random
import socket
import statistics
import subprocess
import tempfile
import time
from typing import Any

import aiohttp

REPOSITORY = HERE.parent
CLI = (sys.executable, "-m", "bots.cli")
WORDS = [f"w{n}" for n in range(20_000)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def background(folder: Path, documents: int) -> None:
    rng = random.Random(7)
    for n in range(documents):
        sections = "\n\n".join(
            f"## Part {k}\n\n" + " ".join(rng.choices(WORDS, k=180)) for k in range(3)
        )
        (folder / f"doc-{n:05d}.md").write_text(f"# Document {n}\n\n{sections}\n")


async def ask(http: aiohttp.ClientSession, url: str, question: str) -> list[str]:
    async with http.post(f"{url}/api/v1/chat", json={"message": question}) as response:
        body: dict[str, Any] = await response.json()
        return [c["title"] for c in body.get("citations", [])]


async def cited(http: aiohttp.ClientSession, url: str, code: str, title: str) -> None:
    while (await ask(http, url, f"What is code {code}?"))[:1] != [title]:
        await asyncio.sleep(0.02)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--background", type=int, default=5000, help="documents first")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="switchboard-live-ingest-"))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SWITCHBOARD_", "OPENAI_", "QDRANT_", "DATABASE_", "SLACK_"))}
    env.update(DATA_DIR=str(work / "data"), PORT=str(port), SWITCHBOARD_LOG_LEVEL="WARNING")
    server = subprocess.Popen([*CLI, "serve"], cwd=REPOSITORY, env=env,
                              stdout=subprocess.DEVNULL, stderr=open(work / "serve.log", "wb"))
    try:
        async with aiohttp.ClientSession() as http:
            for _ in range(600):
                try:
                    async with http.get(f"{url}/readyz") as r:
                        if r.status == 200:
                            break
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.1)
            passages = 0
            if args.background:
                tree = work / "background"
                tree.mkdir()
                background(tree, args.background)
                started = time.perf_counter()
                done = subprocess.run([*CLI, "ingest", str(tree)], cwd=REPOSITORY, env=env,
                                      capture_output=True, text=True, check=True)
                took = time.perf_counter() - started
                print(f"background: {done.stdout.strip()} in {took:.1f} s")
                passages = int(done.stdout.rsplit(";", 1)[1].split()[0])
            rounds: dict[str, list[float]] = {"cli": [], "cited": [], "api": []}
            connector = aiohttp.UnixConnector(path=str(work / "data" / "run" / "control.sock"))
            async with aiohttp.ClientSession(connector=connector) as control:
                for n in range(args.rounds):
                    for way in ("cli", "api"):
                        code, title = f"NEW-{way}-{n:03d}", f"New {way} {n}"
                        doc = work / "new" / f"{way}-{n:03d}.md"
                        doc.parent.mkdir(exist_ok=True)
                        doc.write_text(f"# {title}\n\nThe new code is {code}.\n")
                        started = time.perf_counter()
                        if way == "cli":
                            subprocess.run([*CLI, "ingest", str(doc)], cwd=REPOSITORY, env=env,
                                           capture_output=True, check=True)
                            rounds["cli"].append(time.perf_counter() - started)
                            await cited(http, url, code, title)
                            rounds["cited"].append(time.perf_counter() - started)
                        else:
                            async with control.post("http://switchboard/api/v1/ingest",
                                                    json={"paths": [str(doc)]}) as r:
                                await r.read()
                            await cited(http, url, code, title)
                            rounds["api"].append(time.perf_counter() - started)
    finally:
        server.terminate()
        server.wait(30)
    print(f"{args.rounds} rounds, {passages} passages indexed before them")
    print("| measure | p50 s | p95 s | max s |\n|---|---:|---:|---:|")
    for name, values in rounds.items():
        ordered = sorted(values)
        p95 = ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]
        print(f"| {name} | {statistics.median(values):.2f} | {p95:.2f} | {max(values):.2f} |")


if __name__ == "__main__":
    asyncio.run(main())
