"""`SlackReplier`: status while working, the answer streamed into the thread, sources and
👍/👎 when it stops — and the whole answer delivered by `chat.postMessage`/`chat.update`
when streaming is unavailable or the stream expires (`message_not_in_streaming_state`).

While it writes, the person can stop it: the thread's agent session is `processing`
(Slack shows its stop control), or, where the workspace refuses sessions, the answer's
own message carries a Stop button until the answer ends. A stopped answer ends with
what was written and `_Stopped._`, without 👍/👎.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack.blocks import STOP_BLOCK, answer_footer, stop_blocks
from adapters.slack.clients import ChannelPacer, SlackClients
from adapters.slack.mrkdwn import split_message, to_mrkdwn
from adapters.slack.sessions import AgentSessions, StoppedStreams
from adapters.slack.status import set_status
from adapters.slack.translate import SlackTarget, target_of, tenant_of
from core.inbox import InboxItem
from core.notes import NoteStore, ReplyNote
from core.replies import (
    ReplyDone,
    ReplyEvent,
    ReplyFailed,
    ReplyWithdrawn,
    Status,
    TextDelta,
    Titled,
    ToolProgress,
)
from core.titles import first_line_title

log = logging.getLogger(__name__)

STREAM_CAP = 11_000  # characters streamed into one message (Slack takes ≤ 12,000 per call)
CLOSING_ZONE = 8_000  # past this, stream whole paragraphs only
MESSAGE_LIMIT = 3_500  # Markdown per plain message: mrkdwn's escapes must stay under 4,000
FLUSH_CHARS = 200
FLUSH_SECONDS = 0.25
UPDATE_SECONDS = 1.0  # chat.update at most this often while falling back
NO_ANSWER = "Sorry, I have no answer to that."
# Slack's task_update statuses are pending, in_progress, complete and error (not
# "completed"); only task cards go into a stream, never plan cards beside them.
_TASK_STATE = {"running": "in_progress", "done": "complete", "failed": "error"}


class SlackRepliers:
    def __init__(
        self, clients: SlackClients, pacer: ChannelPacer, *, notes: NoteStore | None = None,
        sessions: AgentSessions | None = None, stopped: StoppedStreams | None = None,
    ) -> None:
        """`notes`: where the message showing each answer is noted (the inbox).
        `sessions`: agent sessions, and which workspaces refuse them (None: neither
        sessions nor Stop buttons). `stopped`: the streams Slack stopped, as the
        channel heard (in this process)."""
        self._clients = clients
        self._pacer = pacer
        self._notes = notes
        self._sessions = sessions
        self._stopped = stopped

    def replier_for(self, item: InboxItem) -> SlackReplier:
        note = ReplyNote(self._notes, item) if self._notes is not None else None
        return SlackReplier(target_of(item.message), self._clients, self._pacer,
                            resume=item.reply_id, note=note, item_id=item.id,
                            sessions=self._sessions, stopped=self._stopped,
                            first_title=first_line_title(item.message.text))


class SlackReplier:
    def __init__(
        self,
        target: SlackTarget,
        clients: SlackClients,
        pacer: ChannelPacer,
        *,
        resume: str | None = None,
        note: ReplyNote | None = None,
        item_id: int | None = None,
        sessions: AgentSessions | None = None,
        stopped: StoppedStreams | None = None,
        first_title: str | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`resume`: the ts of a message an earlier attempt left showing part of this
        answer (its process died): the answer goes into that message, never beside it.
        `note`: keeps the ts of the message showing the answer, durably, once it exists.
        `item_id`: the inbox item answered (what a Stop button stops). `first_title`: the
        question's first line, the title of a session the answer creates (a thread that
        names itself so needs no rename)."""
        self._target = target
        self._clients = clients
        self._pacer = pacer
        self._note = note
        self._clock = clock
        self._client: AsyncWebClient | None = None
        self._status = ""
        self._text = ""
        self._streamed = 0  # characters of _text sent into the stream
        self._stream_ts: str | None = None
        self._streaming = True  # False once streaming failed: post and update instead
        self._shown_ts: str | None = None  # the message showing the answer when not streaming
        self._last_flush = float("-inf")
        self._tasks: dict[str, dict[str, str]] = {}
        self._unsent_tasks: list[str] = []
        self._finishing = False  # the end of the answer went out (or was being sent)
        self._resumed = resume  # to stop (if still streaming) before it is first updated
        self._replied = False  # a new message went out (it clears the status)
        self._ousted = False  # another worker took the answer over (and finishes its message)
        self._item_id = item_id
        self._sessions = sessions
        self._stopped = stopped or StoppedStreams()
        self._begun = False
        self._session = False  # the thread's agent session is ours and processing
        self._starting: asyncio.Task[None] | None = None  # setting it processing
        self._titled: str | None = None  # the conversation's new title, named at the end
        self._first_title = first_title
        self._button = False  # the answer's message shows our Stop button (no session)
        self._button_in: str | None = None  # the message whose blocks hold the button
        self._halted = False  # Slack stopped our stream: only the end goes out now
        if resume is not None:
            self._streaming, self._shown_ts = False, resume

    async def send(self, event: ReplyEvent) -> None:
        if self._ousted:
            return
        if not self._begun:
            self._begun = True
            await self._begin()
        match event:
            case Titled(title=title):
                self._titled = title
            case Status(text=text):
                await self._set_status(text)
            case TextDelta(text=text):
                self._text += text
                await self._progress()
            case ToolProgress():
                await self._task(event)
            case ReplyDone():
                await self._finish(event)
            case ReplyFailed():
                await self._fail(event)
            case ReplyWithdrawn(kept=kept):
                await self._withdraw(kept)

    async def _api(self) -> AsyncWebClient:
        if self._client is None:
            self._client = await self._clients.for_workspace(self._target.workspace)
        return self._client

    # ----- stopping: the session's stop control, or our Stop button -----

    def _workspace(self) -> str:
        w = self._target.workspace
        return tenant_of(w.team_id, w.enterprise_id)

    async def _begin(self) -> None:
        """The stop control, as the answer begins. The session's is set beside the first
        sign (not before it: a Slack round trip the person would wait for); where the
        workspace refuses sessions, the answer's message carries a Stop button while it is
        written (a `blocks` chunk: the stream takes blocks since 2026-04), and loses it
        when the answer ends."""
        if self._sessions is None:
            return
        if self._sessions.refused(self._workspace()):
            self._button = self._item_id is not None
        else:
            self._starting = asyncio.create_task(self._start_session(), name="agent-session")

    async def _start_session(self) -> None:
        assert self._sessions is not None
        t = self._target
        try:
            self._session = await self._sessions.processing(
                await self._api(), self._workspace(), t.channel, t.thread_ts, user=t.user,
                title=self._first_title,
            )
        except SlackApiError as e:  # (the client's own errors are the sessions' to log)
            log.info("no agent session for the answer in %s (%s)", t.channel, _error(e))
        # Refused: the button instead, if the message is not on screen yet (else this
        # answer goes without; the workspace's next ones have it from the start).
        self._button = not self._session and self._item_id is not None

    def _button_blocks(self) -> list[dict[str, Any]]:
        return stop_blocks(self._item_id) if self._button and self._item_id is not None else []

    async def _without_button(self, ts: str, markdown: str, footer: list[dict[str, Any]]) -> None:
        """The answer's message as it ends, its Stop button gone (chat.update replaces the
        blocks the stream built: the body goes back in as a markdown block)."""
        if self._button_in != ts:
            return
        self._button_in = None
        try:
            await (await self._api()).chat_update(
                channel=self._target.channel, ts=ts, text=to_mrkdwn(markdown),
                blocks=_with_body(markdown, footer),
            )
        except SlackApiError as e:
            log.info("could not take the Stop button away in %s (%s)", self._target.channel,
                     _error(e))

    async def _session_known(self) -> None:
        """Whether the thread has a session (or the answer a Stop button) is known."""
        if self._starting is not None:
            starting, self._starting = self._starting, None
            await starting

    async def _end(self, *, released: bool = False) -> None:
        """The answer ended: the session leaves processing (unless chat.stopStream
        released it)."""
        client, t = await self._api(), self._target
        if self._session and not released and self._sessions is not None:
            self._session = False
            await self._sessions.active(client, t.channel, t.thread_ts)

    async def _title(self) -> None:
        """Named once the answer is out (a title is not worth a wait before it)."""
        title, self._titled = self._titled, None
        if self._sessions is None or not title or (self._session and title == self._first_title):
            return  # (the session was created with it)
        t = self._target
        await self._sessions.title(await self._api(), self._workspace(), t.channel,
                                   t.thread_ts, title, session=self._session)

    def _slack_stopped(self) -> bool:
        """Whether Slack stopped our stream (the session's stop control): from then on it
        is an ordinary message, finished by chat.update."""
        ts = self._stream_ts
        if ts is None or not self._streaming or (self._target.channel, ts) not in self._stopped:
            return False
        log.info("Slack stopped the stream in %s; the answer ends by chat.update",
                 self._target.channel)
        self._streaming, self._shown_ts, self._halted = False, ts, True
        return True

    # ----- status and tasks -----

    async def _set_status(self, text: str) -> None:
        if text == self._status:
            return
        self._status = text
        await set_status(await self._api(), self._target.channel, self._target.thread_ts, text)

    async def _task(self, event: ToolProgress) -> None:
        self._tasks[event.call_id] = {
            "type": "task_update", "id": event.call_id, "title": event.title,
            "status": _TASK_STATE[event.state],
        }
        if event.call_id not in self._unsent_tasks:
            self._unsent_tasks.append(event.call_id)
        # Tools usually run before any text: their states go with the stream's first
        # chunk rather than opening the stream early (it would expire during long tools).
        if self._stream_ts is not None and self._streaming and not self._slack_stopped():
            await self._append("")

    def _task_chunks(self) -> list[dict[str, str]]:
        chunks = [self._tasks[call_id] for call_id in self._unsent_tasks]
        self._unsent_tasks.clear()
        return chunks

    # ----- streaming -----

    async def _progress(self) -> None:
        if self._halted or self._slack_stopped():
            return
        if not self._streaming:
            await self._update_shown()
            return
        due = self._clock() - self._last_flush >= FLUSH_SECONDS
        if due or len(self._text) - self._streamed >= FLUSH_CHARS:
            await self._append(self._next_piece())

    def _next_piece(self) -> str:
        """Text not yet streamed. Near the cap, only whole paragraphs go into the stream,
        so the message can end between paragraphs and the rest follow in new ones."""
        end = len(self._text)
        if end > CLOSING_ZONE:
            # Until a paragraph ends within the cap, hold back; what never fits is posted
            # after the stream stops.
            cut = self._text.rfind("\n\n", self._streamed + 1, min(end, STREAM_CAP))
            end = max(cut, self._streamed)
        return self._text[self._streamed : end]

    def _chunks(self, piece: str) -> list[dict[str, Any]]:
        """Tool states not yet shown, then the text."""
        chunks: list[dict[str, Any]] = [*self._task_chunks()]
        if piece:
            chunks.append({"type": "markdown_text", "text": piece})
        return chunks

    async def _start_stream(self, client: AsyncWebClient, chunks: list[dict[str, Any]]) -> str:
        t = self._target
        response = await client.chat_startStream(
            channel=t.channel, thread_ts=t.thread_ts, chunks=chunks,
            recipient_user_id=t.user, recipient_team_id=t.user_team,
        )
        self._stream_ts = str(response["ts"])
        self._replied = True
        self._remember(self._stream_ts)
        return self._stream_ts

    def _remember(self, ts: str) -> None:
        """Note the message durably, without holding up the answer (a few ms later on
        a busy database: a crash inside that window leaves the message cut off)."""
        if self._note is not None:
            self._note.remember(ts)

    async def _noted_by_now(self) -> None:
        """Before the end of the answer goes out: the note is written (the answer is
        stored by then, and a retry after a crash must find the message to finish)."""
        if self._note is not None:
            await self._note.settled()

    async def _append(self, piece: str) -> None:
        chunks = self._chunks(piece)
        if not chunks:
            return
        self._last_flush = self._clock()
        try:
            client = await self._api()
            if self._stream_ts is None:
                await self._session_known()  # the stop control is settled before it shows
                button = self._button_blocks()  # while it is written, the Stop button
                ts = await self._start_stream(
                    client, [{"type": "blocks", "blocks": button}, *chunks] if button else chunks
                )
                self._button_in = ts if button else None
            else:
                await client.chat_appendStream(
                    channel=self._target.channel, ts=self._stream_ts, chunks=chunks
                )
        except SlackApiError as e:
            if self._slack_stopped() or await self._taken_over(e):
                return
            self._stop_streaming(e)
            await self._update_shown()
            return
        self._streamed += len(piece)

    async def _taken_over(self, error: SlackApiError) -> bool:
        """Our stream was stopped by someone else: the worker that took the answer over
        (this one stalled past its lease) and now finishes that message. Nothing more
        goes into it from here, not even the end of what this attempt said."""
        if (self._stream_ts is None or self._note is None
                or error.response.get("error") != "message_not_in_streaming_state"):
            return False
        self._ousted = await self._note.taken_over()
        if self._ousted:
            log.info("the answer in %s was taken over by another worker", self._target.channel)
        return self._ousted

    def _stop_streaming(self, error: SlackApiError) -> None:
        where = "expired" if self._stream_ts else "is unavailable"
        log.info("Slack stream in %s %s (%s); posting instead", self._target.channel, where,
                 _error(error))
        self._streaming = False
        # An expired stream's message keeps what it showed; it becomes the first message.
        self._shown_ts = self._stream_ts
        self._last_flush = float("-inf")

    # ----- posting and updating instead of streaming -----

    async def _update_shown(self) -> None:
        """While falling back: keep one message showing the answer so far, updated at
        most once a second (chat.update is rate limited like posting)."""
        if not self._text or self._clock() - self._last_flush < UPDATE_SECONDS:
            return
        self._last_flush = self._clock()
        part, button = self._first_part(), self._button_blocks()
        await self._show(part, blocks=_with_body(part, button) if button else None)

    def _first_part(self) -> str:
        """The part of the answer so far that one message holds."""
        return (split_message(self._text, MESSAGE_LIMIT) or [""])[0]

    async def _show(self, markdown: str, *, blocks: list[dict[str, Any]] | None) -> None:
        client, t = await self._api(), self._target
        if self._resumed is not None:
            # Left streaming by a process that died: end that stream first (it may have
            # ended or expired already).
            resumed, self._resumed = self._resumed, None
            try:
                await client.chat_stopStream(channel=t.channel, ts=resumed)
            except SlackApiError as e:
                log.info("the earlier stream in %s was not open (%s)", t.channel, _error(e))
        if self._shown_ts is None:
            self._shown_ts = await self._post(markdown, blocks=blocks)
            self._remember(self._shown_ts)
            self._button_in = self._shown_ts if _has_button(blocks) else None
            return
        if self._button_in == self._shown_ts and not _has_button(blocks):
            # The end of the answer: the Stop button goes (blocks replace blocks).
            blocks, self._button_in = blocks or _with_body(markdown, []), None
        await client.chat_update(
            channel=t.channel, ts=self._shown_ts, text=to_mrkdwn(markdown), blocks=blocks
        )

    async def _post(self, markdown: str, *, blocks: list[dict[str, Any]] | None) -> str:
        """A new thread message, paced per channel; its ts."""
        client, t = await self._api(), self._target
        await self._pacer.wait(t.channel)
        response = await client.chat_postMessage(
            channel=t.channel, thread_ts=t.thread_ts, text=to_mrkdwn(markdown), blocks=blocks
        )
        self._replied = True
        return str(response["ts"])

    # ----- the end of a turn -----

    async def _finish(self, done: ReplyDone) -> None:
        await self._noted_by_now()
        self._finishing = True
        self._text = done.text if done.text.strip() else NO_ANSWER
        # A stopped answer is not rated: it was cut short on purpose.
        footer = answer_footer(done.citations, done.turn_id,
                               feedback=done.feedback and not done.stopped)
        await self._session_known()
        released = False
        self._slack_stopped()
        if self._streaming:
            released = await self._finish_stream(footer)
        if not self._streaming:
            await self._deliver_all(footer)
        if not self._ousted:
            await self._end(released=released)
            await self._title()
        await self._status_cleared()
        await self._noted_by_now()  # a message posted last is noted before the item is done

    async def _status_cleared(self) -> None:
        """An answer that only edited a message (an earlier attempt's) posted no reply to
        clear the status with: cleared here."""
        if self._status and not self._replied:
            await self._set_status("")

    async def _finish_stream(self, footer: list[dict[str, Any]]) -> bool:
        """Whether the stream stopped (releasing the session: chat.stopStream sets it
        active)."""
        piece = self._next_piece()
        rest = self._text[self._streamed + len(piece) :]
        chunks = self._chunks(piece)
        try:
            client = await self._api()
            ts = self._stream_ts
            if ts is None:
                ts, chunks = await self._start_stream(client, chunks), []
            await client.chat_stopStream(
                channel=self._target.channel, ts=ts, chunks=chunks,
                blocks=None if rest.strip() else footer or None,
                session_status="active" if self._session else None,
            )
        except SlackApiError as e:
            if self._slack_stopped() or await self._taken_over(e):
                return False
            self._stop_streaming(e)
            return False
        self._streamed += len(piece)
        await self._without_button(ts, self._text[: self._streamed],
                                   [] if rest.strip() else footer)
        # Past one message's cap, the rest follows as ordinary thread messages.
        parts = split_message(rest, MESSAGE_LIMIT)
        for n, part in enumerate(parts, start=1):
            await self._post(part, blocks=_with_body(part, footer) if n == len(parts) else None)
        return True

    async def _deliver_all(self, footer: list[dict[str, Any]]) -> None:
        """The whole answer as thread messages split on paragraphs, the first one being
        the message already showing part of it (an expired stream or a posted draft)."""
        parts = split_message(self._text, MESSAGE_LIMIT)
        for n, part in enumerate(parts, start=1):
            blocks = _with_body(part, footer) if n == len(parts) and footer else None
            if n == 1:
                await self._show(part, blocks=blocks)
                await self._noted_by_now()  # before the rest: a retry finishes this one
            else:
                await self._post(part, blocks=blocks)

    async def _fail(self, failed: ReplyFailed) -> None:
        await self._noted_by_now()
        await self._session_known()
        self._slack_stopped()
        released = await self._apologise(failed)
        await self._end(released=released)
        await self._title()

    async def _apologise(self, failed: ReplyFailed) -> bool:
        """Whether it went out by chat.stopStream (which releases the session)."""
        apology = f"{failed.text} (reference {failed.reference})"
        if self._stream_ts is not None and self._streaming:
            # What the model said that was not flushed yet goes first: the apology may
            # speak of "the answer above" (unless the end was sent: it may have arrived).
            unsent = "" if self._finishing else self._text[self._streamed : STREAM_CAP]
            try:
                await (await self._api()).chat_stopStream(
                    channel=self._target.channel, ts=self._stream_ts,
                    chunks=[{"type": "markdown_text", "text": f"{unsent}\n\n_{apology}_"}],
                    session_status="active" if self._session else None,
                )
                said = self._text[: self._streamed] + f"{unsent}\n\n_{apology}_"
                await self._without_button(self._stream_ts, said, [])
                return True
            except SlackApiError as e:
                log.info("could not end the stream with the apology: %s", _error(e))
        if self._shown_ts is not None:
            # The message showing (part of) the answer, perhaps an earlier attempt's: the
            # apology goes into it rather than beside it.
            said = "" if self._finishing else self._first_part()
            try:
                await self._show(f"{said}\n\n_{apology}_" if said.strip() else apology,
                                 blocks=None)
                await self._status_cleared()
                return False
            except SlackApiError as e:
                log.info("could not put the apology into the answer's message: %s", _error(e))
        await self._post(apology, blocks=None)
        return False

    async def _withdraw(self, kept: str | None) -> None:
        """Another worker answers instead: this attempt's message goes, unless it is the
        one the new owner finishes (it shows its own stop control)."""
        await self._session_known()
        ts = self._shown_ts or self._stream_ts
        if ts is None or ts == kept:
            return
        client, channel = await self._api(), self._target.channel
        if self._streaming and ts == self._stream_ts:
            with contextlib.suppress(SlackApiError):  # it may have expired meanwhile
                await client.chat_stopStream(channel=channel, ts=ts)
        try:
            await client.chat_delete(channel=channel, ts=ts)
        except SlackApiError as e:
            log.warning("could not take back a message in %s (%s)", channel, _error(e))


def _has_button(blocks: list[dict[str, Any]] | None) -> bool:
    return any(b.get("block_id") == STOP_BLOCK for b in blocks or ())


def _with_body(markdown: str, footer: list[dict[str, Any]]) -> list[dict[str, Any]]:
    # With blocks, `text` only feeds notifications: the body must be a block too.
    return [{"type": "markdown", "text": markdown}, *footer]


def _error(e: Exception) -> str:
    if isinstance(e, SlackApiError):
        return str(e.response.get("error", "error"))
    return type(e).__name__
