"""What `switchboard chat` shows: the program's own lines, earlier turns, and answers as
reply events arrive.

On a terminal (`RichScreen`) answers are Markdown rendered with rich as they stream, the
status is a spinner that the text replaces, and the sources follow, dimmed. Anywhere else
(`PlainScreen`: a pipe, a file) the answer is its Markdown as written, without escape codes
or status lines, so what is read back is the conversation and nothing else.
"""

from __future__ import annotations

from typing import TextIO

from rich.console import Console
from rich.live import Live
from rich.spinner import Spinner
from rich.text import Text

from adapters.terminal.markdown import MarkdownStream, Tight, markdown
from core.messages import Citation
from core.replies import (
    ReplyDone,
    ReplyEvent,
    ReplyFailed,
    ReplyWithdrawn,
    Status,
    TextDelta,
    ToolProgress,
)

STOPPED = "Stopped."


def screen_for(out: TextIO) -> Screen:
    return RichScreen(out) if out.isatty() else PlainScreen(out)


def source_line(c: Citation) -> str:
    return f"[{c.index}] {c.title}" + (f" — {c.url}" if c.url else "")


class PlainScreen:
    def __init__(self, out: TextIO) -> None:
        self._out = out
        self._streaming = False

    def note(self, text: str) -> None:
        self._write(text + "\n")

    def prompt(self, text: str) -> None:
        self._write(text)

    def turn(self, who: str, text: str) -> None:
        self._write(f"{who}> {text}\n")

    async def send(self, event: ReplyEvent) -> None:
        match event:
            case TextDelta(text=text):
                self._streaming = True
                self._write(text)
            case ToolProgress(title=title, state="done" | "failed" as state):
                self._end_text()
                self._write(f"  {'✓' if state == 'done' else '✗'} {title}\n")
            case ReplyDone(citations=citations, stopped=stopped):
                self._end_text()
                self._write(f"{STOPPED}\n" if stopped else "")
                self._write("".join(f"  {source_line(c)}\n" for c in citations) + "\n")
            case ReplyFailed(text=text, reference=reference):
                self._end_text()
                self._write(f"{text} (reference {reference})\n\n")
            case ReplyWithdrawn():
                self._end_text()
                self._write("(answered again below)\n")
            case Status() | ToolProgress():
                pass  # a "working" sign is for someone watching, not for a pipe

    def close(self) -> None:
        self._end_text()

    def _end_text(self) -> None:
        if self._streaming:
            self._write("\n")
            self._streaming = False

    def _write(self, text: str) -> None:
        self._out.write(text)
        self._out.flush()


class RichScreen:
    def __init__(self, out: TextIO) -> None:
        self._console = Console(file=out, highlight=False)
        self._live: Live | None = None
        self._answer: MarkdownStream | None = None

    def note(self, text: str) -> None:
        self._console.print(Text(text, style="dim"))

    def prompt(self, text: str) -> None:
        self._console.print(Text(text, style="bold cyan"), end="")

    def turn(self, who: str, text: str) -> None:
        if who == "you":
            self._console.print(Text.assemble((f"{who}> ", "bold cyan"), text))
        else:
            self._console.print(Text(f"{who}>", style="bold green"))
            self._console.print(Tight(markdown(text)))

    async def send(self, event: ReplyEvent) -> None:
        match event:
            case Status(text=text):
                self._working(text)
            case ToolProgress(title=title, state="running"):
                self._working(title)
            case ToolProgress(title=title, state=state):
                mark = "✓" if state == "done" else "✗"
                self._live_console().print(Text(f"  {mark} {title}", style="dim"))
            case TextDelta(text=text):
                if self._answer is None:
                    self._answer = MarkdownStream(self._started())
                self._answer.add(text)
            case ReplyDone(citations=citations, stopped=stopped):
                self._stop()
                if stopped:
                    self._console.print(Text(STOPPED, style="dim italic"))
                for c in citations:
                    self._console.print(Text(f"  {source_line(c)}", style="dim"))
                self._console.print()
            case ReplyFailed(text=text, reference=reference):
                self._stop()
                self._console.print(Text.assemble(text, (f" (reference {reference})", "dim")))
                self._console.print()
            case ReplyWithdrawn():
                self._stop()
                self._console.print(Text("(answered again below)", style="dim"))

    def close(self) -> None:
        self._stop()

    def _working(self, text: str) -> None:
        if self._answer is None:  # once the text has begun, it is the sign of progress
            self._started().update(Spinner("dots", Text(text, style="dim"), style="dim"))

    def _started(self) -> Live:
        if self._live is None:
            self._live = Live(console=self._console, refresh_per_second=8, transient=False)
            self._live.start()
        return self._live

    def _live_console(self) -> Console:
        return self._live.console if self._live is not None else self._console

    def _stop(self) -> None:
        if self._live is not None:
            if self._answer is None:
                self._live.update("")  # a spinner with no answer after it goes
            self._live.stop()
        self._live, self._answer = None, None


Screen = PlainScreen | RichScreen
