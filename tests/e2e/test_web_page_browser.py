"""The web chat page in a real (headless) Chromium against the real server, offline.

Chromium, chromedriver and selenium are not part of the test install; without them this
module is skipped. To run it: `apt-get install chromium chromium-driver` and
`pip install selenium`.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

SCREENSHOT = Path("/tmp/switchboard-page.png")
ANSWERED = '.msg.assistant[data-state="done"], .msg.assistant[data-state="error"]'


def _browser_paths() -> tuple[str, str]:
    chromium = shutil.which("chromium") or (
        "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None
    )
    driver = shutil.which("chromedriver")
    if chromium is None or driver is None:
        pytest.skip("needs chromium and chromedriver (apt-get install chromium chromium-driver)")
    return chromium, driver


@contextmanager
def _serving(app: web.Application) -> Iterator[str]:
    """Run the app on a free loopback port in a thread with its own event loop (the
    browser driver blocks); yields the base URL and shuts the app down symmetrically."""
    started: Future[tuple[asyncio.AbstractEventLoop, asyncio.Event, str]] = Future()
    failure: list[BaseException] = []

    async def main() -> None:
        runner = web.AppRunner(app)
        try:
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", 0).start()
            port = runner.addresses[0][1]
            stop = asyncio.Event()
            started.set_result((asyncio.get_running_loop(), stop, f"http://127.0.0.1:{port}/"))
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
    loop, stop, url = started.result(timeout=60)
    try:
        yield url
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(timeout=30)
        assert not thread.is_alive(), "the server did not shut down"
        if failure:
            raise failure[0]


@pytest.fixture
def server_url(tmp_path: Path) -> Iterator[str]:
    from bots.server import create_app
    from bots.settings import load_settings

    settings = load_settings(
        _env_file=None,  # never a developer's .env (it may configure a real model)
        data_dir=tmp_path,
        api_keys=None,
        openai_api_key=None,
        openai_base_url=None,
    )
    with _serving(create_app(settings)) as url:
        yield url


@pytest.fixture
def browser() -> Iterator[Any]:
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


def test_question_is_answered_kept_across_reload_and_cleared_by_new_chat(
    browser: Any, server_url: str
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(browser, 30)

    def messages() -> list[Any]:
        return browser.find_elements(By.CSS_SELECTOR, "#log .msg")

    def input_ready(d: Any) -> Any:
        box = d.find_element(By.ID, "input")
        return box if box.is_enabled() else False

    browser.get(server_url)
    assert "organisation's documents" in browser.find_element(By.ID, "empty").text
    wait.until(input_ready).send_keys("hello", Keys.ENTER)

    answer = wait.until(lambda d: d.find_element(By.CSS_SELECTOR, ANSWERED))
    assert answer.get_attribute("data-state") == "done", answer.text
    assert "no language model" in answer.text.lower()
    box = wait.until(input_ready)
    assert box.get_attribute("value") == ""
    assert browser.switch_to.active_element == box, "focus goes back to the input"
    assert [m.text for m in messages()][0] == "hello"
    assert browser.execute_script("return localStorage.getItem('switchboard.conversation')")
    browser.save_screenshot(str(SCREENSHOT))

    browser.refresh()
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#log .msg")) == 2)
    user, assistant = messages()
    assert user.text == "hello"
    assert "no language model" in assistant.text.lower()
    assert not browser.find_element(By.ID, "empty").is_displayed()

    browser.find_element(By.ID, "new-chat").click()
    wait.until(lambda d: not d.find_elements(By.CSS_SELECTOR, "#log .msg"))
    assert browser.find_element(By.ID, "empty").is_displayed()
    assert browser.execute_script("return localStorage.getItem('switchboard.conversation')") is None

    errors = [e for e in browser.get_log("browser") if e.get("level") == "SEVERE"]
    assert not errors, errors
