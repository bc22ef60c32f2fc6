"""Blocking clients against the real app: a server in a thread of its own (a browser
driver or Schemathesis waits on each request, which would stall the test's own loop),
and a headless Chromium that skips the test where Chromium is not installed."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import threading
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from concurrent.futures import Future
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
from aiohttp import web

T = TypeVar("T")


@dataclass
class Served:
    """An app running in a thread of its own; `call` runs a coroutine on its loop (to
    script a fake or read a store from the blocking test)."""

    url: str
    loop: asyncio.AbstractEventLoop
    app: web.Application

    def call(self, pending: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(pending, self.loop).result(timeout=30)


@contextmanager
def serving_in_thread(app: web.Application) -> Iterator[str]:
    """Run the app on a free loopback port in a thread with its own event loop; yields
    the base URL and shuts the app down symmetrically."""

    @asynccontextmanager
    async def given() -> AsyncIterator[web.Application]:
        yield app

    with serving_opened_in_thread(given) as served:
        yield served.url


@contextmanager
def serving_opened_in_thread(
    open_app: Callable[[], AbstractAsyncContextManager[web.Application]],
) -> Iterator[Served]:
    """As `serving_in_thread`, for an app that needs that loop to be built: `open_app`
    is entered there (a fake model server, say) and exited after the app stops."""
    started: Future[tuple[Served, asyncio.Event]] = Future()
    failure: list[BaseException] = []

    async def main() -> None:
        async with open_app() as app:
            runner = web.AppRunner(app)
            try:
                await runner.setup()
                await web.TCPSite(runner, "127.0.0.1", 0).start()
                port = runner.addresses[0][1]
                stop = asyncio.Event()
                loop = asyncio.get_running_loop()
                started.set_result(
                    (Served(url=f"http://127.0.0.1:{port}/", loop=loop, app=app), stop)
                )
                await stop.wait()
            finally:
                await runner.cleanup()

    def run() -> None:
        try:
            asyncio.run(main())
        except BaseException as e:  # handed to the test thread below
            failure.append(e)
            if not started.done():
                started.set_exception(e)

    thread = threading.Thread(target=run, name="switchboard-server", daemon=True)
    thread.start()
    served, stop = started.result(timeout=60)
    try:
        yield served
    finally:
        served.loop.call_soon_threadsafe(stop.set)
        thread.join(timeout=30)
        assert not thread.is_alive(), "the server did not shut down"
        if failure:
            raise failure[0]


def _browser_paths() -> tuple[str, str]:
    chromium = shutil.which("chromium") or (
        "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None
    )
    driver = shutil.which("chromedriver")
    if chromium is None or driver is None:
        pytest.skip("needs chromium and chromedriver (apt-get install chromium chromium-driver)")
    return chromium, driver


@contextmanager
def chrome() -> Iterator[Any]:
    """A headless Chromium through selenium, or the test is skipped."""
    chromium, driver_path = _browser_paths()
    webdriver = pytest.importorskip(
        "selenium.webdriver", reason="needs selenium (pip install selenium)"
    )
    from selenium.webdriver.chrome.service import Service

    with tempfile.TemporaryDirectory(prefix="switchboard-chromium-") as profile:
        options = webdriver.ChromeOptions()
        options.binary_location = chromium
        for arg in (
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--window-size=1100,820",
            f"--user-data-dir={profile}",
        ):
            options.add_argument(arg)
        options.set_capability("goog:loggingPrefs", {"browser": "SEVERE"})
        # An explicit driver path: Selenium Manager must never try to download one.
        driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
        try:
            yield driver
        finally:
            driver.quit()
