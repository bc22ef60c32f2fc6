"""How fast a stop takes effect (issue 15: the REST stop answers within a second).

    .venv/bin/python benchmarks/stop_latency.py            # 30 stops, one process
    .venv/bin/python benchmarks/stop_latency.py --split    # `serve --role web` + `worker`

Each trial streams a question to `POST /api/v1/chat/stream` against the fake OpenAI model,
which writes its first words and then waits; once they arrive, `POST
/api/v1/conversations/{id}/stop`. Timed: the stop request's own answer, the `done` event
(`"stopped": true`) on the answer's stream after the stop was sent, and the model call
being dropped (the fake sees its client leave). With `--split` the stream and the stop go
to the web process and the answer is written by a worker process: the stop crosses
processes (a Unix datagram beside SQLite).
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, this file's folder comes first on sys.path and `core.py` would shadow
# the `core` package; the repository root is needed for the fakes in `tests`.
HERE = Path(__file__).parent.resolve()
sys.path[:] = [str(HERE.parent)] + [p for p in sys.path if Path(p or ".").resolve() != HERE]

import argparse
import asyncio
import statistics
import tempfile
import time

import aiohttp

from benchmarks.serving import pct
from tests.e2e.conftest import sse_events
from tests.e2e.processes import Processes
from tests.fakes.openai_server import FakeOpenAI, Reply


async def trial(session: aiohttp.ClientSession, url: str, llm: FakeOpenAI) -> dict[str, float]:
    gate = asyncio.Event()
    llm.script(Reply("The first words of an answer that would go on and on", chunk_size=10,
                     gate=gate))
    abandoned = llm.abandoned
    async with session.post(f"{url}/api/v1/chat/stream", json={"message": "go on"}) as stream:
        reader = sse_events(stream)
        conversation = None
        async for name, data in reader:
            if name == "start":
                conversation = data["conversation_id"]
            if name == "delta":
                break
        sent = time.perf_counter()
        async with session.post(f"{url}/api/v1/conversations/{conversation}/stop") as stop:
            assert (await stop.json())["stopping"] is True
        answered = time.perf_counter()
        async for name, data in reader:
            if name == "done":
                assert data["stopped"] is True
                break
        done = time.perf_counter()
    await llm.wait_for_abandoned(abandoned + 1, timeout=10)
    dropped = time.perf_counter()
    gate.set()
    return {"stop answered": (answered - sent) * 1000, "done": (done - sent) * 1000,
            "model call dropped": (dropped - sent) * 1000}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--split", action="store_true")
    parser.add_argument("--trials", type=int, default=30)
    args = parser.parse_args()
    async with FakeOpenAI(model="fake-model") as llm:
        with tempfile.TemporaryDirectory() as tmp:
            env = {"DATA_DIR": str(Path(tmp) / "data"), "SWITCHBOARD_BUNDLED_DOCS": "false",
                   "OPENAI_BASE_URL": llm.base_url, "OPENAI_API_KEY": "sk-bench-0123456789",
                   "SWITCHBOARD_MODEL": "fake-model"}
            procs = Processes(Path(tmp) / "processes", env)
            try:
                if args.split:
                    web = procs.start("web", "serve", "--role", "web", http=True)
                    procs.start("worker", "worker")
                else:
                    web = procs.start("serve", "serve", http=True)
                await procs.ready(web)
                assert web.url is not None
                async with aiohttp.ClientSession() as session:
                    await trial(session, web.url, llm)  # warm-up
                    runs = [await trial(session, web.url, llm) for _ in range(args.trials)]
            finally:
                procs.close()
    layout = "web + worker processes" if args.split else "one process"
    print(f"{layout}, {args.trials} stops (ms after the stop was sent):")
    print("| measure | p50 | p95 | max |\n|---|---:|---:|---:|")
    for key in runs[0]:
        values = [r[key] for r in runs]
        print(f"| {key} | {statistics.median(values):.1f} | {pct(values, 95):.1f} | "
              f"{max(values):.1f} |")


if __name__ == "__main__":
    asyncio.run(main())
