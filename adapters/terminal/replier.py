"""Renders reply events in a terminal: status lines, streamed text, then sources."""

from __future__ import annotations

from typing import TextIO

from core.replies import ReplyDone, ReplyEvent, ReplyFailed, Status, TextDelta, ToolProgress


class TerminalReplier:
    def __init__(self, out: TextIO, *, color: bool | None = None) -> None:
        self._out = out
        self._color = out.isatty() if color is None else color
        self._streaming = False

    def _dim(self, text: str) -> str:
        return f"\x1b[2m{text}\x1b[0m" if self._color else text

    def _line(self, text: str) -> None:
        if self._streaming:
            self._out.write("\n")
            self._streaming = False
        self._out.write(text + "\n")
        self._out.flush()

    async def send(self, event: ReplyEvent) -> None:
        match event:
            case Status(text=text):
                self._line(self._dim(f"  … {text}"))
            case ToolProgress(title=title, state=state) if state != "running":
                self._line(self._dim(f"  {'✓' if state == 'done' else '✗'} {title}"))
            case ToolProgress():
                pass
            case TextDelta(text=text):
                self._streaming = True
                self._out.write(text)
                self._out.flush()
            case ReplyDone(citations=citations):
                if self._streaming:
                    self._out.write("\n")
                    self._streaming = False
                for c in citations:
                    self._out.write(self._dim(f"  [{c.index}] {c.title}{f' — {c.url}' if c.url else ''}") + "\n")
                self._out.write("\n")
                self._out.flush()
            case ReplyFailed(text=text, reference=reference):
                self._line(f"{text} {self._dim(f'(reference {reference})')}\n")
