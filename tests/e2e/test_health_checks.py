"""The health checks of the Dockerfile and compose.yaml, run as written against real
`switchboard serve` and `switchboard worker` processes (no Docker here): healthy while the
process serves, unhealthy once it has stopped."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.e2e.processes import REPOSITORY, Processes, free_port

pytestmark = pytest.mark.timeout(120)

KEYS = "ops:health-check-key-0123456789"
HEALTHY_WITHIN = 60.0


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[Processes]:
    env = {"DATA_DIR": str(tmp_path / "data"), "SWITCHBOARD_BUNDLED_DOCS": "false"}
    with Processes(tmp_path, env) as processes:
        yield processes
        print(processes.report())


def _image_check() -> list[str]:
    text = re.sub(r"\\\n", " ", (REPOSITORY / "Dockerfile").read_text())
    [line] = [line for line in text.splitlines() if line.startswith("HEALTHCHECK")]
    argv: list[str] = json.loads(line.split(" CMD ", 1)[1])
    return argv


def _compose_check(service: str) -> list[str]:
    compose = yaml.safe_load((REPOSITORY / "compose.yaml").read_text())
    test: list[str] = compose["services"][service]["healthcheck"]["test"]
    assert test[0] == "CMD"
    return test[1:]


def _healthy(argv: list[str], env: dict[str, str] | None = None) -> bool:
    assert argv[0] == "python"  # the image's interpreter; here, this one
    done = subprocess.run([sys.executable, *argv[1:]], env=env, capture_output=True,
                          timeout=30)
    return done.returncode == 0


async def _becomes_healthy(argv: list[str], env: dict[str, str] | None = None) -> None:
    deadline = time.monotonic() + HEALTHY_WITHIN
    while not await asyncio.to_thread(_healthy, argv, env):
        assert time.monotonic() < deadline, f"{argv} never succeeded"
        await asyncio.sleep(0.5)


async def test_the_image_check_follows_a_serving_process(procs: Processes) -> None:
    web = procs.start("serve", "serve", http=True, env={"SWITCHBOARD_API_KEYS": KEYS})
    await procs.ready(web)
    assert web.url is not None
    check, env = _image_check(), {"PORT": web.url.rsplit(":", 1)[1]}

    assert await asyncio.to_thread(_healthy, check, env)
    # compose's web check is the same request on the port compose gives it.
    compose = [part.replace(":3978/", f":{env['PORT']}/") for part in _compose_check("web")]
    assert await asyncio.to_thread(_healthy, compose)

    await web.stop()
    assert not await asyncio.to_thread(_healthy, check, env)


async def test_the_worker_check_follows_a_worker_process(procs: Processes) -> None:
    port = str(free_port())
    check = [part.replace(":9464/", f":{port}/") for part in _compose_check("worker")]
    assert not await asyncio.to_thread(_healthy, check)  # nothing there yet

    # With API keys set its metrics answer 401 to the check: still alive, still healthy.
    worker = procs.start("worker", "worker", env={
        "SWITCHBOARD_METRICS_PORT": port, "HOST": "127.0.0.1", "SWITCHBOARD_API_KEYS": KEYS,
    })
    await _becomes_healthy(check)

    await worker.stop()
    assert not await asyncio.to_thread(_healthy, check)
