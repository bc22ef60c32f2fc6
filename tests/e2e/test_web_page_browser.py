"""The web chat page in a real (headless) Chromium against the real server, offline.

Chromium, chromedriver and selenium are not part of the test install; without them this
module is skipped. To run it: `apt-get install chromium chromium-driver` and
`pip install selenium`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.browser import chrome, serving_in_thread

SCREENSHOT = Path("/tmp/switchboard-page.png")
ANSWERED = '.msg.assistant[data-state="done"], .msg.assistant[data-state="error"]'


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
    with serving_in_thread(create_app(settings)) as url:
        yield url


@pytest.fixture
def browser() -> Iterator[Any]:
    with chrome() as driver:
        yield driver


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
