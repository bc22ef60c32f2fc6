"""Answers in Teams, sent proactively through the conversation reference stored with
the message (`outbound.BotConnector`), so they arrive whether or not the request that
brought the message is still open — or the process that received it still running.

In a chat with the bot the answer streams (Teams' streaming protocol: informative
updates, then the text so far at most once a second, then a final message that carries
the citations, the AI label and the feedback buttons). Elsewhere Teams cannot stream:
a typing indicator runs until the answer arrives in one message.

The person can press Stop on a streaming answer: Teams refuses the next update (see
`stream_errors`), keeps what it showed, and the answer ends there (`AnswerStopped`), never
sent again as a message. Any other refusal still falls back to one message.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from adapters.teams.credentials import TokenUnavailable
from adapters.teams.outbound import BotConnector, ConnectorError
from adapters.teams.render import (
    MESSAGE_LIMIT,
    ai_message_fields,
    split_message,
    to_teams_markdown,
    utf16_len,
)
from adapters.teams.stream_errors import stopped_by_user
from core.errors import AnswerStopped
from core.inbox import InboxItem
from core.messages import ConversationRef
from core.notes import NoteStore, ReplyNote
from core.ports import Exclusive, SentMessages
from core.replies import (
    ReplyDone,
    ReplyEvent,
    ReplyFailed,
    ReplyWithdrawn,
    Status,
    TextDelta,
    ToolProgress,
)

log = logging.getLogger(__name__)

STREAM_INTERVAL = 1.0  # Teams refuses stream updates closer together than this
STREAM_CAP = 100.0  # Teams ends a stream after 2 minutes; stop updating well before
TYPING_INTERVAL = 3.0  # a typing indicator shows for about three seconds
TYPING_LIMIT = 40  # at most two minutes, even if the turn never ends (shutdown)

SendError = (ConnectorError, TokenUnavailable)
# Sends an activity (its own fields; the addressing comes from the stored reference):
# the id the connector gave it, if any.
Sender = Callable[[dict[str, Any]], Awaitable[str | None]]
# Replaces an activity the bot sent (its id, the new fields).
Updater = Callable[[str, dict[str, Any]], Awaitable[None]]
# Deletes an activity the bot sent (its id).
Deleter = Callable[[str], Awaitable[None]]


def status_code(error: BaseException) -> int | None:
    return error.status if isinstance(error, ConnectorError) else None


def stopped_on_teams(error: BaseException) -> bool:
    """The refusal says the person pressed Stop on the streaming answer."""
    return isinstance(error, ConnectorError) and stopped_by_user(
        error.status, error.code, error.detail)


class StreamSlots:
    """Teams allows one stream per chat at a time: a second answer in the same chat
    (two quick questions) is sent as one message instead of a second stream. `shared`:
    the same across the processes of a deployment (several workers on PostgreSQL)."""

    def __init__(self, shared: Exclusive | None = None) -> None:
        self._open: set[str] = set()
        self._shared = shared

    async def take(self, chat: str) -> bool:
        if chat in self._open:
            return False
        self._open.add(chat)
        if self._shared is not None and not await self._shared.take(_stream_key(chat)):
            self._open.discard(chat)
            return False
        return True

    async def release(self, chat: str) -> None:
        self._open.discard(chat)
        if self._shared is not None:
            await self._shared.release(_stream_key(chat))


def _stream_key(chat: str) -> str:
    return f"teams-stream:{chat}"


@dataclass(slots=True)
class _Stream:
    """One Teams stream: opened by the first update, whose id names it."""

    id: str | None = None
    sequence: int = 0
    opened_at: float = 0.0
    sent_at: float = float("-inf")
    streaming: bool = False  # text has been streamed (no more informative updates)
    usable: bool = True
    sent_text: str = ""
    slot: bool = False  # holds the chat's stream slot


@dataclass(slots=True)
class _Turn:
    text: list[str] = field(default_factory=list)
    stream: _Stream = field(default_factory=_Stream)
    finishing: bool = False  # the whole answer went out (or was being sent)
    stopped: bool = False  # the person pressed Stop on the stream (Teams refused an update)


class TeamsReplier:
    def __init__(
        self,
        *,
        send: Sender,
        where: ConversationRef,
        personal: bool,
        sent: SentMessages,
        slots: StreamSlots | None = None,
        update: Updater | None = None,
        delete: Deleter | None = None,
        resume: str | None = None,
        note: ReplyNote | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`resume`: what an earlier attempt (whose process died) left showing this
        answer, as `note` kept it: its stream is finished with this answer, or its message
        replaced, instead of a second one being sent. `note` keeps, durably, what shows
        the answer: "stream:<id>" or "message:<id>"."""
        self._send = send
        self._update = update
        self._delete = delete
        self._note = note
        self._replace: str | None = None  # a message to replace with the answer's first part
        self._slots = slots or StreamSlots()
        self._where = where
        self._personal = personal
        self._sent = sent
        self._clock = clock
        self._turn = _Turn()
        self._typing: asyncio.Task[None] | None = None
        self._resumed_stream = False
        kind, _, shown = (resume or "").partition(":")
        if kind == "stream" and shown and personal:
            # Its sequence is unknown: no more updates, only the final that finishes it.
            stream = self._turn.stream
            stream.id, stream.streaming, stream.sent_at = shown, True, float("inf")
            self._resumed_stream = True
        elif kind == "message" and shown:
            # Replaced by the final answer; a stream meanwhile would be a second message.
            self._replace = shown
            self._turn.stream.usable = False

    async def send(self, event: ReplyEvent) -> None:
        if self._turn.stopped and isinstance(event, Status | ToolProgress | TextDelta):
            raise AnswerStopped("the person stopped this answer in Teams")
        match event:
            case Status(text=text):
                await self._working(text)
            case ToolProgress(title=title, state="running"):
                await self._working(title)
            case ToolProgress():
                pass
            case TextDelta(text=text):
                await self._delta(text)
            case ReplyDone():
                await self._done(event)
            case ReplyFailed():
                await self._failed(event)
            case ReplyWithdrawn(kept=kept):
                await self._withdraw(kept)

    # ----- while working -----

    async def _working(self, text: str) -> None:
        stream = self._turn.stream
        if self._personal and stream.usable and not stream.streaming:
            # Informative updates count as stream updates too: at most one a second.
            if self._clock() - stream.sent_at >= STREAM_INTERVAL:
                await self._stream_update("informative", text)
        elif self._typing is None:
            self._typing = asyncio.create_task(self._keep_typing(), name="teams-typing")

    async def _keep_typing(self) -> None:
        for _ in range(TYPING_LIMIT):
            try:
                await self._send({"type": "typing"})
            except SendError as e:
                log.info("could not show typing in %s: %s", self._where.conversation, e)
            await asyncio.sleep(TYPING_INTERVAL)

    async def _stop_typing(self) -> None:
        if self._typing is not None:
            self._typing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._typing
            self._typing = None

    async def _delta(self, text: str) -> None:
        self._turn.text.append(text)
        stream = self._turn.stream
        if not (self._personal and stream.usable):
            if self._typing is None:
                self._typing = asyncio.create_task(self._keep_typing(), name="teams-typing")
            return
        now = self._clock()
        if now - stream.sent_at < STREAM_INTERVAL:
            return  # the final message carries whatever is not streamed
        if stream.id is not None and now - stream.opened_at > STREAM_CAP:
            return
        so_far = to_teams_markdown("".join(self._turn.text))
        if utf16_len(so_far) > MESSAGE_LIMIT:
            return  # the stream holds the first part; the final splits the rest off
        if so_far.strip() and so_far != stream.sent_text:
            await self._stream_update("streaming", so_far)

    async def _stream_update(self, kind: str, text: str) -> None:
        stream = self._turn.stream
        if stream.id is None and not stream.slot:
            stream.slot = await self._slots.take(self._where.conversation)
            if not stream.slot:
                stream.usable = False
                return
        info: dict[str, Any] = {
            "type": "streaminfo", "streamType": kind, "streamSequence": stream.sequence + 1,
        }
        if stream.id is not None:
            info["streamId"] = stream.id
        try:
            response_id = await self._send({"type": "typing", "text": text, "entities": [info]})
        except SendError as e:
            if stopped_on_teams(e):
                await self._stopped_on_teams()
                raise AnswerStopped("the person stopped this answer in Teams") from e
            code = status_code(e)
            if code is not None and 400 <= code < 500:
                # 403: this chat cannot stream (or the stream ended); one message it is.
                log.info("streaming refused in %s (%s); sending one message", self._where, code)
                stream.usable = False
            else:
                log.warning("a stream update failed in %s: %r", self._where.conversation, e)
            return
        now = self._clock()
        if stream.id is None:
            stream.id = response_id
            stream.opened_at = now
            if not response_id:
                stream.usable = False  # no id to continue it with
            else:
                self._remember(f"stream:{response_id}")
        stream.sequence += 1
        stream.sent_at = now
        stream.streaming = stream.streaming or kind == "streaming"
        if kind == "streaming":
            stream.sent_text = text

    async def _stopped_on_teams(self) -> None:
        """Teams keeps what the stream showed, as the message: nothing more goes out."""
        log.info("the person stopped the answer in %s", self._where.conversation)
        self._turn.stopped = True
        self._turn.stream.usable = False
        await self._stop_typing()
        await self._release()

    # ----- the end -----

    async def _done(self, done: ReplyDone) -> None:
        try:
            await self._noted_by_now()
            if self._turn.stopped:
                # Stopped on Teams: the stream, as far as it showed, is the answer's message.
                await self._stop_typing()
                return
            await self._finish(done)
        finally:
            await self._release()

    async def _finish(self, done: ReplyDone) -> None:
        self._turn.finishing = True
        await self._stop_typing()
        parts = split_message(to_teams_markdown(done.text)) or [""]
        last = len(parts) - 1
        message_id = None
        # Stopped elsewhere (an admin): the text ends with the stopped mark; no feedback.
        feedback = done.feedback and not done.stopped
        for index, part in enumerate(parts):
            fields = ai_message_fields(part, done.citations, feedback=feedback and index == last)
            message_id = await self._deliver(fields, final_of_stream=index == 0)
            if self._turn.stopped:
                return  # Stop pressed as the answer ended: the rest is not sent either
            if index == 0 and message_id:
                # Noted before the rest goes out: a retry after a crash replaces it.
                self._remember(f"message:{message_id}")
                await self._noted_by_now()
        if message_id and done.turn_id is not None and feedback:
            await self._sent.remember(self._where, message_id, done.turn_id)

    async def _failed(self, failed: ReplyFailed) -> None:
        try:
            await self._noted_by_now()
            await self._stop_typing()
            apology = f"{failed.text} (reference {failed.reference})"
            # What the model had said goes before the apology ("the answer above is
            # incomplete"): a stream's final message replaces what the stream showed, and
            # outside 1:1 chats nothing was shown yet. Not when the whole answer was
            # being sent: it may have arrived.
            # Nor after a Stop: the stopped stream shows it already.
            said = "" if self._turn.finishing or self._turn.stopped else \
                to_teams_markdown("".join(self._turn.text))
            said = said.strip()
            parts = split_message(f"{said}\n\n{apology}") if said else [apology]
            stopped_before = self._turn.stopped
            for index, part in enumerate(parts):
                shown = await self._deliver({"type": "message", "text": part},
                                            final_of_stream=index == 0)
                if self._turn.stopped and not stopped_before:
                    return  # Stop pressed as the apology would have finished the stream
                if index == 0 and shown:  # the retry replaces it with the answer
                    self._remember(f"message:{shown}")
                    await self._noted_by_now()
        finally:
            await self._release()

    async def _withdraw(self, kept: str | None) -> None:
        """Another worker answers instead: this attempt's stream (all it shows before the
        end) goes, unless it is the one the new owner finishes."""
        try:
            await self._stop_typing()
            stream = self._turn.stream
            # Kept as the stream, or as the message that finished it (the same id).
            if stream.id is None or self._delete is None or _shown_id(kept) == stream.id:
                return
            try:
                await self._delete(stream.id)
            except SendError as e:
                log.warning("could not take back a message in %s (%s)",
                            self._where.conversation, e)
        finally:
            await self._release()

    async def _release(self) -> None:
        if self._turn.stream.slot:
            self._turn.stream.slot = False
            await self._slots.release(self._where.conversation)

    def _remember(self, shown: str) -> None:
        if self._note is not None:
            self._note.remember(shown)

    async def _noted_by_now(self) -> None:
        """Before the end goes out, and before the item is done: what shows the answer is
        noted (a retry after a crash must find it)."""
        if self._note is not None:
            await self._note.settled()

    async def _deliver(self, fields: dict[str, Any], *, final_of_stream: bool) -> str | None:
        if final_of_stream and self._replace is not None:
            # An earlier attempt's message (its process died once it was sent): replaced.
            shown, self._replace = self._replace, None
            if (replaced := await self._replaced(shown, fields)) is not None:
                return replaced
        stream = self._turn.stream
        if final_of_stream and stream.id is not None and stream.usable:
            final = {"type": "streaminfo", "streamType": "final", "streamId": stream.id}
            try:
                # The finished stream is the message (Teams answers the final with 202 {}).
                return await self._send(_activity(fields, extra_entities=[final])) or stream.id
            except SendError as e:
                if stopped_on_teams(e):
                    # Stop pressed before the final landed: what the stream showed stays.
                    await self._stopped_on_teams()
                    return stream.id
                code = status_code(e)
                if code is None or not 400 <= code < 500:
                    raise  # it may have arrived: do not send it twice
                log.info("the stream in %s could not be finished (%s); sending a message",
                         self._where.conversation, code)
            # An earlier attempt finished that stream (with an apology, say) before its
            # process died: the finished stream is a message, replaced in place.
            if self._resumed_stream and (replaced := await self._replaced(stream.id, fields)):
                return replaced
        return await self._send(_activity(fields))

    async def _replaced(self, shown: str, fields: dict[str, Any]) -> str | None:
        """Message `shown` (an earlier attempt's) now says `fields`; None if it cannot."""
        if self._update is None:
            return None
        try:
            await self._update(shown, _activity(fields))
        except SendError as e:
            log.info("could not replace message %s in %s (%s); sending a new one",
                     shown, self._where.conversation, e)
            return None
        return shown


def _shown_id(noted: str | None) -> str | None:
    """The activity id in a note ("stream:<id>" or "message:<id>")."""
    return noted.partition(":")[2] or None if noted else None


def _activity(
    fields: dict[str, Any], *, extra_entities: Sequence[dict[str, Any]] = ()
) -> dict[str, Any]:
    entities = [*extra_entities, *fields.get("entities", ())]
    return {
        "type": fields.get("type", "message"),
        "text": fields.get("text"),
        "textFormat": fields.get("textFormat"),
        "entities": entities or None,
        "channelData": fields.get("channelData") or None,
    }


def text_activity(text: str) -> dict[str, Any]:
    """A plain Markdown message (notices, not answers: no AI label, no feedback)."""
    return {"type": "message", "text": text, "textFormat": "markdown"}


class TeamsRepliers:
    """Rebuilds a replier from the reference stored with each inbox item."""

    def __init__(
        self, connector: BotConnector, *, sent: SentMessages,
        notes: NoteStore | None = None,
        streams: Exclusive | None = None,
    ) -> None:
        """`streams`: who streams in which chat, shared by the deployment's processes."""
        self._connector = connector
        self._sent = sent
        self._notes = notes
        self._slots = StreamSlots(streams)

    def replier_for(self, item: InboxItem) -> TeamsReplier:
        data = item.message.channel_data
        reference = data["reference"]

        async def update(activity_id: str, activity: dict[str, Any]) -> None:
            await self._connector.update(reference, activity_id, activity)

        async def delete(activity_id: str) -> None:
            await self._connector.delete(reference, activity_id)

        return TeamsReplier(
            send=self.sender_for(reference),
            where=item.message.conversation,
            personal=data.get("conversation_type") == "personal",
            sent=self._sent,
            slots=self._slots,
            update=update,
            delete=delete,
            resume=item.reply_id,
            note=ReplyNote(self._notes, item) if self._notes is not None else None,
        )

    def sender_for(self, reference: dict[str, Any]) -> Sender:
        async def send(activity: dict[str, Any]) -> str | None:
            return await self._connector.send(reference, activity)

        return send
