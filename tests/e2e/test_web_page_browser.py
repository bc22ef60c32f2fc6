"""The web chat page in a real (headless) Chromium against the real server, offline.

Selenium is in the test install and CI installs Debian's chromium and chromium-driver
(`.ci/run`); on a machine without them this module is skipped. Every wait is on a DOM
condition; the fake model's answers are held at a gate where a test looks mid-stream.
"""

from __future__ import annotations

import asyncio
import getpass
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from tests.e2e.browser import Served, chrome, serving_in_thread, serving_opened_in_thread
from tests.fakes.openai_server import FakeOpenAI, Reply, Step

SCREENSHOT = Path("/tmp/switchboard-page.png")
CHAT_SCREENSHOT = Path(tempfile.gettempdir()) / "switchboard-web-chat.png"
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


@dataclass
class Chat:
    """The server with a fake model and one ingested local file (`slack.md`)."""

    served: Served
    llm: FakeOpenAI

    def script(self, *steps: Step) -> None:
        async def script() -> None:
            self.llm.script(*steps)

        self.served.call(script())

    def open_gate(self, gate: asyncio.Event) -> None:
        self.served.loop.call_soon_threadsafe(gate.set)


@pytest.fixture
def chat(tmp_path: Path) -> Iterator[Chat]:
    from adapters.ingest.pipeline import ingest
    from bots.knowledge import ingest_options, knowledge_index
    from bots.server import create_app
    from bots.settings import load_settings

    folder = tmp_path / "kb"
    folder.mkdir()
    (folder / "slack.md").write_text(
        "# Connecting Slack\n\n## Create the Slack app\n\nCreate a Slack app from the "
        "manifest that `switchboard slack manifest` prints.\n\n## Install it\n\n"
        "Install the Slack app to your workspace and copy its bot token.\n"
    )
    fakes: list[FakeOpenAI] = []

    @asynccontextmanager
    async def app() -> AsyncIterator[web.Application]:
        async with FakeOpenAI() as llm:
            fakes.append(llm)
            settings = load_settings(
                _env_file=None, data_dir=tmp_path / "data", api_keys=None,
                openai_api_key="test-key", openai_base_url=llm.base_url, model="fake-model",
                model_retries=0, bundled_docs=False,
            )
            async with knowledge_index(settings) as index:
                await ingest([folder], index, options=ingest_options(settings))
            yield create_app(settings)

    with serving_opened_in_thread(app) as served:
        yield Chat(served=served, llm=fakes[0])


@pytest.fixture
def browser() -> Iterator[Any]:
    with chrome() as driver:
        yield driver


def test_question_is_answered_kept_across_reload_and_new_chat_keeps_it_listed(
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
    listed = browser.find_elements(By.CSS_SELECTOR, "#conversations .conv")
    assert [c.find_element(By.CLASS_NAME, "conv-title").text for c in listed] == ["hello"]
    assert listed[0].get_attribute("aria-current") == "false"
    assert len(browser.find_elements(By.CSS_SELECTOR, "#empty .prompt")) >= 2

    errors = [e for e in browser.get_log("browser") if e.get("level") == "SEVERE"]
    assert not errors, errors


MARKDOWN_ANSWER = (
    "**Slack** connects through a Slack app [1].\n\n"
    "- Create the app from `switchboard slack manifest`\n"
    "- Install it and copy the bot token [1]\n"
)


def test_a_day_of_web_chat_markdown_sources_feedback_and_two_conversations(
    browser: Any, chat: Chat
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    from bots.server import SWITCHBOARD

    wait = WebDriverWait(browser, 30)

    def input_ready(d: Any) -> Any:
        box = d.find_element(By.ID, "input")
        return box if box.is_enabled() else False

    def answers() -> list[Any]:
        return browser.find_elements(By.CSS_SELECTOR, "#log .msg.assistant")

    def answered(n: int) -> Callable[[Any], Any]:
        def done(d: Any) -> Any:
            found = d.find_elements(By.CSS_SELECTOR, ANSWERED)
            return found[n - 1] if len(found) >= n else False
        return done

    def sidebar() -> list[str]:
        return [c.text.split("\n")[0] for c in browser.find_elements(By.CSS_SELECTOR, ".conv")]

    # Ask: the answer streams, held at a gate after its first piece, already as Markdown.
    gate = asyncio.Event()
    chat.script(Reply(MARKDOWN_ANSWER, chunk_size=46, gate=gate))
    browser.get(chat.served.url)
    wait.until(input_ready).send_keys("How do I connect Slack?", Keys.ENTER)
    strong = wait.until(lambda d: d.find_element(
        By.CSS_SELECTOR, '.msg.assistant[data-state="streaming"] .answer strong'))
    assert strong.text == "Slack"
    streaming = answers()[0]
    assert "**" not in streaming.find_element(By.CLASS_NAME, "answer").text
    assert not streaming.find_element(By.CLASS_NAME, "status").is_displayed(), (
        "the status line gives way to the text"
    )
    assert browser.find_element(By.ID, "stop").is_displayed()
    chat.open_gate(gate)

    answer = wait.until(answered(1))
    assert answer.get_attribute("data-state") == "done", answer.text
    items = answer.find_elements(By.CSS_SELECTOR, ".answer ul li")
    assert [i.find_element(By.TAG_NAME, "code").text for i in items[:1]] == [
        "switchboard slack manifest"
    ]
    [first_cid] = [browser.execute_script(
        "return localStorage.getItem('switchboard.conversation')")]
    # Each conversation is named after its first question (the fake model's titles quote
    # its first three words).
    wait.until(lambda d: sidebar() == ["Title: How do I"])

    # Open a source: the [1] in the text links to Switchboard's view of the local file.
    cites = answer.find_elements(By.CSS_SELECTOR, ".answer a.cite")
    assert [c.text for c in cites] == ["[1]", "[1]"]
    assert cites[0].get_attribute("href").startswith(chat.served.url + "?source=file%3A")
    cites[0].click()
    dialog = wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "#source-dialog[data-source]"))
    assert browser.find_element(By.ID, "source-title").text == "Connecting Slack"
    assert "Install the Slack app to your workspace" in dialog.text
    assert browser.switch_to.active_element == browser.find_element(By.ID, "source-close")
    browser.switch_to.active_element.send_keys(Keys.ESCAPE)
    wait.until(lambda d: not d.find_element(By.ID, "source-dialog").is_displayed())

    # Feedback: a thumbs up is stored as Slack's and Teams' buttons store it.
    answer.find_element(By.CSS_SELECTOR, '.rate[data-rating="up"]').click()
    wait.until(lambda d: answer.get_attribute("data-rating") == "up")
    turn_id = int(answer.get_attribute("data-turn"))
    feedback = chat.served.app[SWITCHBOARD].feedback
    assert chat.served.call(feedback.ratings(turn_id)) == {f"web:local:{getpass.getuser()}": "up"}
    assert answer.find_element(
        By.CSS_SELECTOR, '.rate[data-rating="up"]').get_attribute("aria-pressed") == "true"

    # A second conversation; the first stays in the list.
    browser.find_element(By.ID, "new-chat").click()
    wait.until(lambda d: not d.find_elements(By.CSS_SELECTOR, "#log .msg"))
    chat.script(Reply("Printers are on floor *two*."))
    wait.until(input_ready).send_keys("Where are the printers?", Keys.ENTER)
    wait.until(lambda d: d.find_element(By.CSS_SELECTOR, ".msg[data-state=done] em").text == "two")
    wait.until(lambda d: sidebar() == ["Title: Where are the", "Title: How do I"])

    # Switch back to the first and continue it: the model sees its history.
    first = browser.find_element(By.CSS_SELECTOR, f'.conv[data-id="{first_cid}"]')
    first.click()
    wait.until(lambda d: [m.text for m in d.find_elements(By.CSS_SELECTOR, "#log .msg.user")]
               == ["How do I connect Slack?"])
    wait.until(lambda d: first.get_attribute("aria-current") == "true")
    restored = wait.until(answered(1))
    assert restored.find_element(By.CSS_SELECTOR, ".answer strong").text == "Slack"
    assert restored.get_attribute("data-rating") == "up", "the rating given is shown again"
    chat.script(Reply("Then invite the bot to a channel."))
    wait.until(input_ready).send_keys("And then?", Keys.ENTER)
    wait.until(lambda d: "invite the bot" in answered(2)(d).text if answered(2)(d) else False)
    sent = chat.llm.requests[-1].json["messages"]
    assert [m["content"] for m in sent if m["role"] == "user"] == [
        "How do I connect Slack?", "And then?"
    ]
    wait.until(lambda d: sidebar() == ["Title: How do I", "Title: Where are the"])
    assert browser.execute_script(
        "return localStorage.getItem('switchboard.conversation')") == first_cid
    browser.save_screenshot(str(CHAT_SCREENSHOT))  # docs/web-chat.png is one of these

    errors = [e for e in browser.get_log("browser") if e.get("level") == "SEVERE"]
    assert not errors, errors


def test_stop_ends_the_answer_where_it_was_and_it_is_kept_marked_stopped(
    browser: Any, chat: Chat
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(browser, 30)
    gate = asyncio.Event()
    whole = (
        "Shown first, <img src=x onerror=\"document.title='owned'\"> as text. "
        "[a link](javascript:document.title='owned') and the rest after the stop."
    )
    chat.script(Reply(whole, chunk_size=len(whole) - 30, gate=gate))
    browser.get(chat.served.url)
    wait.until(lambda d: d.find_element(By.ID, "input").is_enabled())
    browser.find_element(By.ID, "input").send_keys("Tell me everything", Keys.ENTER)
    wait.until(lambda d: "Shown first" in d.find_element(By.CSS_SELECTOR, ".msg.assistant").text)
    assert browser.switch_to.active_element == browser.find_element(By.ID, "stop")

    browser.switch_to.active_element.send_keys(Keys.ESCAPE)  # Esc stops, as Stop does
    # The server stops the model and ends the answer where it was, marked stopped.
    stopped = wait.until(lambda d: d.find_element(
        By.CSS_SELECTOR, '.msg.assistant[data-state="done"]'))
    answer = stopped.find_element(By.CLASS_NAME, "answer")
    assert '<img src=x onerror="document.title=' in answer.text  # raw HTML shown as text
    assert not answer.find_elements(By.TAG_NAME, "img")
    assert "the rest" not in answer.text and answer.text.endswith("Stopped.")
    box = wait.until(lambda d: d.find_element(By.ID, "input"))
    wait.until(lambda d: box.is_enabled() and d.switch_to.active_element == box)

    conversation = browser.execute_script("return localStorage.getItem('switchboard.conversation')")
    item = f'.conv[data-id="{conversation}"]'
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, item))
    stored = conversation_turns(chat, conversation)
    wait.until(lambda d: stored() == 2)
    chat.open_gate(gate)  # the model's abandoned stream ends; nothing more is stored
    browser.refresh()
    restored = wait.until(lambda d: d.find_element(By.CSS_SELECTOR, ".msg[data-state=done]"))
    assert "the rest after the stop" not in restored.text
    assert restored.find_element(By.CLASS_NAME, "answer").text.endswith("Stopped.")
    links = restored.find_elements(By.CSS_SELECTOR, ".answer a")
    assert all(not (a.get_attribute("href") or "").startswith("javascript:") for a in links)
    assert browser.title != "owned"

    # Copy, and ask again: the question goes once more and both answers stay.
    restored.find_element(By.CSS_SELECTOR, ".copy").click()
    wait.until(lambda d: restored.find_element(By.CLASS_NAME, "action-note").text == "Copied")
    chat.script(Reply("A second try."))
    restored.find_element(By.CSS_SELECTOR, ".regenerate").click()
    wait.until(lambda d: "A second try." in d.find_elements(By.CSS_SELECTOR, ANSWERED)[-1].text)
    assert [m.text for m in browser.find_elements(By.CSS_SELECTOR, "#log .msg.user")] == [
        "Tell me everything", "Tell me everything"
    ]


def conversation_turns(chat: Chat, conversation_id: str) -> Callable[[], int]:
    from bots.server import SWITCHBOARD

    store = chat.served.app[SWITCHBOARD].conversations

    def count() -> int:
        return len(chat.served.call(store.recent_turns(conversation_id, 10)))

    return count


def test_an_administrator_adds_a_document_from_the_page_and_it_is_cited(
    browser: Any, server_url: str, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(browser, 30)
    document = tmp_path / "picked" / "zebra.md"
    document.parent.mkdir()
    document.write_text("# Zebra crossing\n\nThe zebra crossing code is ZX-4471.\n")
    browser.get(server_url)  # localhost, no keys: the machine's own user administers

    button = wait.until(lambda d: d.find_element(By.ID, "add-documents")
                        if d.find_element(By.ID, "add-documents").is_displayed() else False)
    assert button.text == "Add documents"
    browser.find_element(By.ID, "document-files").send_keys(str(document))  # the file picker
    notice = wait.until(lambda d: d.find_element(By.CSS_SELECTOR, '.notice[data-state="done"]'))
    assert notice.text.startswith("Knowledge base: 1 new, 0 updated, 0 unchanged.")
    assert (tmp_path / "uploads" / "web" / "zebra.md").exists()  # kept on the server

    box = browser.find_element(By.ID, "input")
    box.send_keys("What is the zebra crossing code?", Keys.ENTER)
    answer = wait.until(lambda d: d.find_element(By.CSS_SELECTOR, ANSWERED))
    assert "ZX-4471" in answer.text  # offline: the passage found, cited
    assert "Zebra crossing" in answer.find_element(By.CLASS_NAME, "sources").text
    errors = [e for e in browser.get_log("browser") if e.get("level") == "SEVERE"]
    assert not errors, errors
