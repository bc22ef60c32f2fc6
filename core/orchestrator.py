"""One turn: from a started inbox item to a stored, delivered answer.

`begin_turn` brought the message, its thread and the sender's profile; the orchestrator
assembles the context, streams the model and runs its tools (or, for a typed `/ticket …`
command, asks the ticket service instead of the model), then stores the answer with
`finish_turn` — which marks the item answered in the same transaction — delivers it, and
records the delivery. Each tool round is stored as it ends (`record_round`): a retry after
a crash replays those rounds to the model and goes on from there, so their tools (opening
a ticket) never run twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field

from core.context import ContextAssembler, TurnInput, audience_of
from core.errors import (
    AnswerStopped,
    ModelError,
    ModelInterrupted,
    ModelTimeout,
    NoAnswer,
    StorageError,
)
from core.inbox import Answered, Started, TurnEnd, patiently
from core.knowledge import PassageBook, cited
from core.messages import Citation
from core.model import ChatMessage, ChatRequest, ModelText, ModelToolCalls, ModelUsage, ToolCall
from core.ports import ChatModel, Inbox, Replier, Telemetry
from core.replies import (
    STOPPED_MARK,
    ReplyDone,
    ReplyEvent,
    Status,
    TextDelta,
    Titled,
    ToolProgress,
)
from core.stops import StopSignal
from core.telemetry import NO_TELEMETRY
from core.threads import NewTurn, Turn
from core.tickets.commands import is_ticket_command, run_ticket_command
from core.titles import Titles, Titling
from core.tools.registry import ToolContext, ToolRegistry, ToolServices

log = logging.getLogger(__name__)


@dataclass(kw_only=True)
class _Round:
    text: str = ""
    calls: tuple[ToolCall, ...] = ()
    usage: list[ModelUsage] = field(default_factory=list)


@dataclass(kw_only=True)
class _Turn:
    """What one answer has done so far, kept when it fails: the apology depends on it."""

    shown: list[str] = field(default_factory=list)  # each round's text, as shown
    recorded: int = 0  # of `shown`, the rounds stored with their tool calls
    writing: str = ""  # the text of the round being streamed, so far
    partial: bool = False  # some text reached the person
    last_text: str = ""
    failed_tools: list[str] = field(default_factory=list)  # titles
    sources: PassageBook = field(default_factory=PassageBook)
    notices: tuple[str, ...] = ()  # what the context lacked, said under the answer
    titling: Titling | None = None  # a new conversation's title, made beside its answer


# The last round offers no tools; this says so, so the model answers in words.
_FINAL_ROUND = ChatMessage(
    role="system",
    content="You have used every tool call this answer allows, and no tools are available "
    "now. Answer the person in words from what you already have, and say what you could "
    "not find out.",
)


class AnswerUndelivered(Exception):
    """The answer is stored (the item is done) but the channel could not deliver it."""


class Orchestrator:
    def __init__(
        self,
        *,
        inbox: Inbox,
        assembler: ContextAssembler,
        model: ChatModel,
        tools: ToolRegistry,
        services: ToolServices,
        max_tool_rounds: int = 5,
        deadline: float = 60.0,
        telemetry: Telemetry = NO_TELEMETRY,
        titles: Titles | None = None,
    ) -> None:
        """`titles`: names each new conversation after its first question."""
        self._inbox = inbox
        self._titles = titles
        self._telemetry = telemetry
        self._assembler = assembler
        self._model = model
        self._tools = tools
        self._services = services
        self._max_tool_rounds = max_tool_rounds
        self._deadline = deadline

    async def answer(
        self, start: Started, replier: Replier, *, owner: str, stop: StopSignal | None = None
    ) -> ReplyDone:
        """Answer one started item through `replier`, as its lease holder `owner`. Raises
        on failure with nothing stored but the person's turn; the caller apologises and
        marks the item. Raises `AnswerUndelivered` when only the delivery failed.

        Everything before the answer is stored (context, every model round and attempt,
        the tools) shares one deadline: a model that never answers costs at most that.
        A `stop` while it is written (or the platform's own, `AnswerStopped`) ends it
        there: what was written is stored and delivered, marked stopped."""
        if is_ticket_command(start.item.message.text):
            return await self._ticket_command(start, replier, owner=owner)
        turn = _Turn(titling=self._titling(start))
        try:
            return await self._write(start, replier, turn, owner=owner, stop=stop or StopSignal())
        finally:
            if turn.titling is not None:
                turn.titling.cancel()

    async def _write(
        self, start: Started, replier: Replier, turn: _Turn, *, owner: str, stop: StopSignal
    ) -> ReplyDone:
        item, message = start.item, start.item.message
        if item.stopped_by is not None:  # stopped while a process that died was writing it
            return await self._stopped(start, replier, turn, owner=owner)
        await replier.send(Status(text="Thinking…"))
        deadline = asyncio.timeout(self._deadline)
        try:
            with stop.cancels():
                async with deadline:
                    await self._think(start, replier, turn, owner=owner)
        except asyncio.CancelledError:
            if not stop.caught():
                raise
            return await self._stopped(start, replier, turn, owner=owner)
        except AnswerStopped:
            log.info("message %s: the person stopped the answer in %s", message.id,
                     message.conversation.channel)
            return await self._stopped(start, replier, turn, owner=owner)
        except TimeoutError as e:
            if not deadline.expired():
                raise
            log.warning("message %s: no answer within the %g s deadline", message.id,
                        self._deadline)
            if turn.partial:
                raise ModelInterrupted(f"the answer passed its {self._deadline:g} s deadline",
                                       timed_out=True) from e
            raise ModelTimeout(f"no answer within the {self._deadline:g} s deadline") from e
        except ModelError as e:
            if turn.partial and not isinstance(e, ModelInterrupted):
                raise ModelInterrupted(str(e), timed_out=isinstance(e, ModelTimeout)) from e
            raise
        text = "\n\n".join(turn.shown)
        if not text.strip():
            raise NoAnswer(f"message {message.id}: the model gave no answer",
                           failed_tools=tuple(dict.fromkeys(turn.failed_tools)))
        if turn.notices:
            notices = "\n\n" + "\n".join(f"_{n}_" for n in turn.notices)
            await replier.send(TextDelta(text=notices))
            turn.last_text += notices
            text += notices
        citations = cited(text, turn.sources.passages)
        final = ChatMessage(role="assistant", content=turn.last_text)
        title = await turn.titling.title() if turn.titling is not None else None
        end = TurnEnd(item_id=item.id, owner=owner, conversation_id=start.conversation.id,
                      turns=(self._new_turn(final, item_id=item.id, citations=citations),),
                      title=title)
        stored = await self._store(end)
        await self._titled(title, replier)
        done = ReplyDone(text=text, citations=citations, turn_id=stored[-1].id)
        await self._deliver(done, replier)
        await self._delivered(item.id, owner)
        return done

    async def _stopped(
        self, start: Started, replier: Replier, turn: _Turn, *, owner: str
    ) -> ReplyDone:
        """The answer as far as it was written, marked stopped: stored (the rounds not yet
        stored with their tools, and the one being streamed), delivered, and the item
        done — never retried."""
        item = start.item
        rounds = [*turn.shown, turn.writing]
        unstored = "\n\n".join(t for t in rounds[turn.recorded:] if t.strip())
        said = "\n\n".join(t for t in rounds if t.strip())
        content = f"{unstored}\n\n{STOPPED_MARK}" if unstored else STOPPED_MARK
        text = f"{said}\n\n{STOPPED_MARK}" if said else STOPPED_MARK
        citations = cited(text, turn.sources.passages)
        answer = NewTurn(role="assistant", content=content, citations=citations,
                         inbox_item_id=item.id)
        # Stopped: no waiting on a model.
        title = await turn.titling.title(wait=0) if turn.titling is not None else None
        stored = await self._store(TurnEnd(item_id=item.id, owner=owner,
                                           conversation_id=start.conversation.id,
                                           turns=(answer,), title=title))
        log.info("message %s: the answer was stopped by %s", item.message.id,
                 item.stopped_by or "the person, in the channel")
        await self._titled(title, replier)
        done = ReplyDone(text=text, citations=citations, turn_id=stored[-1].id,
                         feedback=False, stopped=True)
        await self._deliver(done, replier)
        await self._delivered(item.id, owner)
        return done

    def _titling(self, start: Started) -> Titling | None:
        """A new conversation (its first message) gets a title, stored with its answer."""
        if (self._titles is None or start.conversation.title is not None
                or start.history or start.rounds):
            return None
        return self._titles.begin(start.item.message.text)

    async def _titled(self, title: str | None, replier: Replier) -> None:
        """Shown where the channel shows titles (before the answer's end: the last event)."""
        if title:
            with contextlib.suppress(Exception):  # the channel logs its own failures
                await replier.send(Titled(title=title))

    async def redeliver(self, start: Answered, replier: Replier, *, owner: str) -> ReplyDone:
        """The stored answer of an item whose process died while delivering it: sent as a
        new answer would be (its text, then done), never asked of the model again."""
        answer = start.answer
        done = ReplyDone(text=answer.content, citations=answer.citations, turn_id=answer.id)
        await self._deliver(TextDelta(text=answer.content), replier)
        await self._deliver(done, replier)
        await self._delivered(start.item.id, owner)
        return done

    async def _store(self, end: TurnEnd) -> list[Turn]:
        """`finish_turn`, tried again while the database is away: the answer is on screen
        by now, and storing it is what makes it final; given up, the person gets an
        apology and the message is retried."""
        return await patiently(lambda: self._inbox.finish_turn(end),
                               what=f"the answer to inbox item {end.item_id}")

    async def _delivered(self, item_id: int, owner: str) -> None:
        """Record the delivery, tried again while the database is away. If that fails
        the item stays answered, and whoever claims it after the lease delivers it once
        more, into the same message: the safe side of losing it."""
        try:
            await patiently(lambda: self._inbox.finish_delivery(item_id, owner=owner),
                            what=f"the delivery of inbox item {item_id}")
        except StorageError as e:  # the database is away (and says so elsewhere): one line
            log.warning("could not record the delivery of inbox item %d (%s)", item_id, e)

    async def _think(self, start: Started, replier: Replier, turn: _Turn, *, owner: str) -> None:
        """The context, then model rounds and tools until the model answers in words. In
        the last round no tools are offered and none run, whatever the model returns.
        Rounds an earlier attempt stored come first, as they were, and count."""
        item, message = start.item, start.item.message
        context = await self._assembler.assemble(
            TurnInput(item_id=item.id, message=message, conversation=start.conversation,
                      history=start.history, profile=start.profile)
        )
        messages = [*context.messages, *(t.as_message() for t in start.rounds)]
        turn.notices = context.notices
        done = sum(1 for t in start.rounds if t.tool_calls)
        if done:
            log.info("message %s: going on after the %d tool rounds an earlier attempt did",
                     message.id, done)
        sources = turn.sources = PassageBook(context.passages)
        tool_ctx = ToolContext(
            sender=message.sender,
            conversation=message.conversation,
            message_id=message.id,
            services=self._services,
            audience=audience_of(message),
            sources=sources,
        )
        for round_no in range(min(done, self._max_tool_rounds), self._max_tool_rounds + 1):
            last = round_no == self._max_tool_rounds
            request = ChatRequest(
                messages=(*messages, _FINAL_ROUND) if last else tuple(messages),
                tools=() if last else self._tools.specs(),
                passages=sources.passages,
            )
            result = await self._stream_round(request, replier, turn)
            for usage in result.usage:
                log.debug(
                    "model %s used %d prompt and %d completion tokens for message %s",
                    self._model.name, usage.prompt_tokens, usage.completion_tokens, message.id,
                )
            turn.last_text, turn.writing = result.text, ""
            if result.text:
                turn.shown.append(result.text)
            if not result.calls:
                return
            if last:
                log.warning("message %s: the model asked for %d tool calls after its last "
                            "tool round; none ran", message.id, len(result.calls))
                return
            assistant = ChatMessage(role="assistant", content=result.text, tool_calls=result.calls)
            results = await self._run_tools(result.calls, tool_ctx, replier, turn)
            messages += [assistant, *results]
            await self._inbox.record_round(TurnEnd(
                item_id=item.id, owner=owner, conversation_id=start.conversation.id,
                turns=tuple(self._new_turn(m, item_id=item.id) for m in (assistant, *results)),
            ))
            turn.recorded = len(turn.shown)

    async def _ticket_command(self, start: Started, replier: Replier, *, owner: str) -> ReplyDone:
        """Typed `/ticket …`: answered by the ticket service, not the model, and kept in
        the thread like any exchange, so a later "the ticket I just opened" has it."""
        tickets = self._services.tickets
        message = start.item.message
        if tickets is None:
            text = "Tickets are not available here."
        else:
            text = await run_ticket_command(
                tickets, message.sender, message.text, origin=message.conversation
            )
        answer = NewTurn(role="assistant", content=text, inbox_item_id=start.item.id)
        stored = await self._inbox.finish_turn(
            TurnEnd(item_id=start.item.id, owner=owner,
                    conversation_id=start.conversation.id, turns=(answer,))
        )
        done = ReplyDone(text=text, turn_id=stored[-1].id, feedback=False)
        # The text as one delta, then done: the same events as a model's answer, so a
        # streaming page or the terminal shows it the usual way.
        await self._deliver(TextDelta(text=text), replier)
        await self._deliver(done, replier)
        await self._delivered(start.item.id, owner)
        return done

    @staticmethod
    async def _deliver(event: ReplyEvent, replier: Replier) -> None:
        try:
            await replier.send(event)
        except Exception as e:
            raise AnswerUndelivered(f"the {event.kind} event could not be delivered") from e

    async def _stream_round(self, request: ChatRequest, replier: Replier, turn: _Turn) -> _Round:
        result = _Round()
        separate = bool(turn.shown)  # a blank line between the text of two rounds
        async for event in self._model.stream(request):
            match event:
                case ModelText(text=text) if text:
                    if separate and not result.text:
                        await replier.send(TextDelta(text="\n\n"))
                    result.text += text
                    turn.writing = result.text
                    turn.partial = True
                    if turn.titling is not None:  # the answer's request came first
                        turn.titling.answer_began()
                    await replier.send(TextDelta(text=text))
                case ModelText():
                    pass
                case ModelToolCalls(calls=calls):
                    result.calls = calls
                case ModelUsage():
                    result.usage.append(event)
        return result

    async def _run_tools(
        self, calls: tuple[ToolCall, ...], ctx: ToolContext, replier: Replier, turn: _Turn
    ) -> list[ChatMessage]:
        titles = dict.fromkeys(self._tools.title(c.name) for c in calls)
        await replier.send(Status(text=", ".join(titles) + "…"))
        for call in calls:
            await replier.send(
                ToolProgress(
                    call_id=call.id,
                    tool=call.name,
                    title=self._tools.title(call.name),
                    state="running",
                )
            )
        outcomes = await self._tools.run_all(calls, ctx)
        turn.failed_tools += [self._tools.title(o.call.name) for o in outcomes if not o.ok]
        for outcome in outcomes:  # a name the model made up is not a label of its own
            name = outcome.call.name if self._tools.knows(outcome.call.name) else "unknown"
            self._telemetry.tool_call(name, ok=outcome.ok)
        for outcome in outcomes:
            await replier.send(
                ToolProgress(
                    call_id=outcome.call.id,
                    tool=outcome.call.name,
                    title=self._tools.title(outcome.call.name),
                    state="done" if outcome.ok else "failed",
                )
            )
        return [
            ChatMessage(role="tool", content=o.content, tool_call_id=o.call.id) for o in outcomes
        ]

    def _new_turn(
        self, message: ChatMessage, *, item_id: int, citations: tuple[Citation, ...] = ()
    ) -> NewTurn:
        return NewTurn(
            role=message.role,
            content=message.content,
            tool_calls=message.tool_calls,
            tool_call_id=message.tool_call_id,
            citations=citations,
            inbox_item_id=item_id,
        )
