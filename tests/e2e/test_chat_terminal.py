"""`switchboard chat` as a real process: in a pseudo-terminal it renders the answer's
Markdown (read back from a terminal emulator's screen) and keeps log lines out of the
conversation; piped, it writes the answer's Markdown as it is, without escape codes."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pexpect
import pyte
import pytest

from tests.e2e.processes import REPOSITORY, clean_env
from tests.fakes.openai_server import FakeOpenAI, Reply

ANSWER = (
    "## Connecting Slack\n\n"
    "Run **these** steps:\n\n"
    "1. Render the manifest\n"
    "2. Install the app\n\n"
    "```sh\nswitchboard slack manifest --url https://chat.example.com\n```\n\n"
    "See [the Slack guide](https://docs.example.com/slack).\n"
)
LOG_LINE = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d (DEBUG|INFO|WARNING|ERROR) ")
ROWS, COLUMNS = 50, 100


def chat_env(tmp_path: Path, llm: FakeOpenAI | None) -> dict[str, str]:
    model = {} if llm is None else {
        "OPENAI_BASE_URL": llm.base_url, "OPENAI_API_KEY": "sk-test-0123456789",
        "SWITCHBOARD_MODEL": "fake-model",
    }
    return clean_env({
        "DATA_DIR": str(tmp_path / "data"), **model,
        # Start-up logs at INFO: there is something to keep out of the conversation.
        "SWITCHBOARD_LOG_LEVEL": "INFO", "TERM": "xterm-256color",
    })


class Terminal:
    """A VT100 screen fed with everything the child writes."""

    def __init__(self, rows: int = ROWS) -> None:
        self.screen = pyte.HistoryScreen(COLUMNS, rows, history=1000)
        self._stream = pyte.ByteStream(self.screen)

    def write(self, data: bytes) -> None:
        self._stream.feed(data)

    def flush(self) -> None:
        pass

    def lines(self) -> list[str]:
        return [line.rstrip() for line in self.screen.display]

    def scrolled_off(self) -> list[str]:
        return ["".join(line[x].data for x in sorted(line)).rstrip()
                for line in self.screen.history.top]

    def bold(self, word: str) -> bool:
        row = next(i for i, line in enumerate(self.lines()) if word in line)
        column = self.lines()[row].index(word)
        return all(self.screen.buffer[row][column + i].bold for i in range(len(word)))


async def expect(child: pexpect.spawn, pattern: str) -> None:
    # The fake model answers on this test's event loop: wait for the child on a thread.
    await asyncio.to_thread(child.expect_exact, pattern, timeout=60)


@contextmanager
def chat_in_terminal(env: dict[str, str], terminal: Terminal) -> Iterator[pexpect.spawn]:
    """`switchboard chat` in a pseudo-terminal the size of `terminal`'s screen."""
    size = (terminal.screen.lines, terminal.screen.columns)
    child = pexpect.spawn(sys.executable, ["-m", "bots.cli", "chat"], cwd=str(REPOSITORY),
                          env=env, dimensions=size)
    child.logfile_read = terminal
    try:
        yield child
    finally:
        child.close(force=True)


async def ask(child: pexpect.spawn, question: str, *, until: str) -> None:
    """Ask at the prompt, and wait for `until` in the answer and the next prompt."""
    await expect(child, "you> ")
    child.sendline(question)
    await expect(child, until)
    await expect(child, "you> ")


async def leave(child: pexpect.spawn) -> None:
    child.sendline("/quit")
    await asyncio.to_thread(child.expect, pexpect.EOF, timeout=30)


async def test_in_a_terminal_the_answer_is_rendered_and_logs_go_to_a_file(
    tmp_path: Path, llm: FakeOpenAI
) -> None:
    llm.script(Reply(ANSWER, chunk_size=7))
    terminal = Terminal()
    with chat_in_terminal(chat_env(tmp_path, llm), terminal) as child:
        await ask(child, "How do I connect Slack?", until="docs.example.com/slack")
        await leave(child)

    screen = "\n".join(terminal.lines())
    log = tmp_path / "data" / "logs" / "chat.log"
    assert f"Log: {log}" in screen
    assert "you> How do I connect Slack?" in screen
    # Rendered, not raw: the heading, the bold word, the list, the fence and the link.
    assert "Connecting Slack" in screen and "##" not in screen
    assert "Run these steps:" in screen and "**" not in screen and terminal.bold("these")
    assert re.search(r"^ *1\.? +Render the manifest$", screen, re.MULTILINE)  # rich: " 1 Render…"
    assert re.search(r"^ *switchboard slack manifest --url https://chat.example.com *$",
                     screen, re.MULTILINE)
    assert "```" not in screen
    assert "See the Slack guide (https://docs.example.com/slack)." in screen
    assert screen.count("Connecting Slack") == 1  # streamed without repeating itself
    # The log went to the file, and none of it to the screen.
    assert not LOG_LINE.search(screen)
    assert LOG_LINE.search(log.read_text())


async def test_an_answer_taller_than_the_window_streams_without_repeating_itself(
    tmp_path: Path, llm: FakeOpenAI
) -> None:
    paragraphs = [f"Paragraph {n} says **something** about step {n}." for n in range(1, 31)]
    llm.script(Reply("\n\n".join(paragraphs), chunk_size=5))
    terminal = Terminal(rows=12)
    with chat_in_terminal(chat_env(tmp_path, llm), terminal) as child:
        await ask(child, "Tell me everything", until="step 30.")

    everything = terminal.scrolled_off() + terminal.lines()
    shown = [line for line in everything if line.startswith("Paragraph ")]
    assert shown == [p.replace("**", "") for p in paragraphs]


async def test_ctrl_c_stops_the_answer_then_at_the_prompt_leaves_the_terminal_as_it_found_it(
    tmp_path: Path, llm: FakeOpenAI
) -> None:
    gate = asyncio.Event()  # the answer stops after its first piece until this is set
    llm.script(Reply(ANSWER, chunk_size=len("## Connecting Slack\n"), gate=gate))
    terminal = Terminal()
    try:
        with chat_in_terminal(chat_env(tmp_path, llm), terminal) as child:
            await expect(child, "you> ")
            child.sendline("How do I connect Slack?")
            await expect(child, "Connecting Slack")
            assert terminal.screen.cursor.hidden  # the live region is drawing
            child.sendintr()  # mid-answer: stops the answer
            await expect(child, "Stopped.")
            await expect(child, "you> ")
            assert not terminal.screen.cursor.hidden
            child.sendintr()  # at the prompt: leaves
            await asyncio.to_thread(child.expect, pexpect.EOF, timeout=30)
    finally:
        gate.set()

    assert child.exitstatus == 130
    assert not terminal.screen.cursor.hidden
    assert "Traceback" not in "\n".join(terminal.lines())


async def test_offline_the_start_up_warning_goes_to_the_log_not_the_conversation(
    tmp_path: Path,
) -> None:
    terminal = Terminal()
    with chat_in_terminal(chat_env(tmp_path, None), terminal) as child:
        await ask(child, "hello", until="knowledge base had nothing")
        await leave(child)

    screen = "\n".join(terminal.lines())
    assert "No language model is configured" in screen
    assert "offline mode" not in screen and not LOG_LINE.search(screen)
    log = (tmp_path / "data" / "logs" / "chat.log").read_text()
    assert "WARNING bots.answering: no language model configured" in log


async def test_piped_the_answer_is_plain_markdown_and_logs_stay_on_stderr(
    tmp_path: Path, llm: FakeOpenAI
) -> None:
    llm.script(Reply(ANSWER))
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bots.cli", "chat", cwd=REPOSITORY, env=chat_env(tmp_path, llm),
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(child.communicate(b"How do I connect Slack?\n"), 60)

    assert child.returncode == 0
    text = out.decode()
    assert ANSWER.rstrip("\n") + "\n" in text
    assert "\x1b" not in text and "Thinking" not in text and not LOG_LINE.search(text)
    assert "you>" not in text  # no prompts when nobody types
    assert LOG_LINE.search(err.decode())
    assert not (tmp_path / "data" / "logs").exists()


@pytest.fixture(autouse=True)
def _no_stray_terminal_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    # rich would honour these over the pseudo-terminal's own size and colours.
    for name in ("COLUMNS", "LINES", "NO_COLOR", "FORCE_COLOR", "TERM_PROGRAM"):
        monkeypatch.delenv(name, raising=False)


async def test_ctrl_c_stops_the_answer_not_the_program(tmp_path: Path, llm: FakeOpenAI) -> None:
    """SIGINT (Ctrl-C) while an answer is written: the model call is cancelled, what was
    written is kept marked stopped, and the chat goes on; /threads lists the thread by
    its title."""
    gate = asyncio.Event()  # the model writes its first words, then waits
    llm.script(Reply("The first words and then a great deal more", chunk_size=16, gate=gate),
               Reply("Still here."))
    terminal = Terminal()
    env = chat_env(tmp_path, llm)
    with chat_in_terminal(env, terminal) as child:
        await expect(child, "you> ")
        child.sendline("Explain everything")
        await expect(child, "The first words")
        child.sendintr()  # Ctrl-C, through the terminal, as a person presses it
        await expect(child, "Stopped.")
        await llm.wait_for_abandoned(1)  # the model call was cancelled
        gate.set()
        await ask(child, "Are you still there?", until="Still here.")
        child.sendline("/threads")  # (`ask` waited for this prompt already)
        await expect(child, "Title: Explain everything")
        await expect(child, "you> ")
        await leave(child)
    screen = "\n".join(terminal.lines())
    assert "a great deal more" not in screen
    assert child.exitstatus == 0

    from adapters.sql.engine import create_engine
    from adapters.sql.tables import turns

    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'data' / 'switchboard.db'}")
    try:
        async with engine.connect() as conn:
            from sqlalchemy import select

            stored = [row.content for row in await conn.execute(
                select(turns.c.content).where(turns.c.role == "assistant").order_by(turns.c.id))]
    finally:
        await engine.dispose()
    assert stored == ["The first words \n\n_Stopped._", "Still here."]
