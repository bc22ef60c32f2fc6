"""Where the answer path is observed: wrappers around the ports it already goes through
(the inbox, the model, the retriever, an answer's replier), each telling a `Telemetry`
what happened, so the orchestrator and the channels stay as they are.

Nothing here sees a message's text or a prompt: counts, kinds and timings only.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime

from core.errors import ModelTimeout
from core.inbox import (
    Acceptance,
    AcceptOutcome,
    Claim,
    Duplicate,
    InboxItem,
    ItemStatus,
    NotFollowed,
    NotYours,
    Recorded,
    Requeued,
    TurnEnd,
    TurnStart,
)
from core.knowledge import Audience, Passage
from core.limits import Admission, Limited
from core.log_fields import add_log_fields
from core.messages import InboundMessage
from core.model import ChatRequest, ModelEvent, ModelText, ModelUsage
from core.ports import (
    ChatModel,
    Inbox,
    MessageOutcome,
    ModelOutcome,
    RateLimiter,
    Replier,
    Retriever,
    Telemetry,
)
from core.replies import ReplyEvent, TextDelta
from core.threads import Turn


class NoTelemetry:
    """The default: nothing is measured."""

    def received(self, channel: str) -> None:
        pass

    def message(self, channel: str, outcome: MessageOutcome, *, detail: str = "") -> None:
        pass

    def first_sign(self, channel: str, seconds: float) -> None:
        pass

    def first_token(self, channel: str, seconds: float) -> None:
        pass

    def model_call(
        self, model: str, *, outcome: ModelOutcome, seconds: float, first_token: float | None,
    ) -> None:
        pass

    def model_tokens(self, model: str, *, prompt: int, completion: int) -> None:
        pass

    def tool_call(self, tool: str, *, ok: bool) -> None:
        pass

    def retrieval(self, *, seconds: float, ok: bool) -> None:
        pass


NO_TELEMETRY: Telemetry = NoTelemetry()


class ObservedInbox:
    """Counts every delivery offered to the inbox and the ones it refuses, and names the
    message in the log fields of the request (or task) that offered it."""

    def __init__(self, inbox: Inbox, telemetry: Telemetry) -> None:
        self._inbox = inbox
        self._telemetry = telemetry

    async def accept(self, acceptance: Acceptance) -> AcceptOutcome:
        message = acceptance.message
        channel = message.conversation.channel
        add_log_fields(channel=channel, message_id=message.id)
        self._telemetry.received(channel)
        outcome = await self._inbox.accept(acceptance)
        match outcome:
            case Duplicate(item_id=item_id, status=status):
                add_log_fields(inbox_item_id=item_id, conversation_id=outcome.conversation_id)
                self._telemetry.message(channel, "duplicate", detail=status)
            case NotFollowed():
                self._telemetry.message(channel, "not_followed")
            case NotYours():
                self._telemetry.message(channel, "not_yours")
            case Recorded(item=item) | Requeued(item=item):
                add_log_fields(inbox_item_id=item.id, conversation_id=outcome.conversation_id)
        return outcome

    async def begin_turns(self, claim: Claim, *, limit: int) -> list[TurnStart]:
        return await self._inbox.begin_turns(claim, limit=limit)

    async def begin_turn(self, item_id: int, claim: Claim) -> TurnStart | None:
        return await self._inbox.begin_turn(item_id, claim)

    async def finish_turn(self, end: TurnEnd) -> list[Turn]:
        return await self._inbox.finish_turn(end)

    async def record_round(self, end: TurnEnd) -> list[Turn]:
        return await self._inbox.record_round(end)

    async def note_reply(self, item_id: int, reply_id: str, *, owner: str) -> bool:
        return await self._inbox.note_reply(item_id, reply_id, owner=owner)

    async def finish_delivery(self, item_id: int, *, owner: str) -> bool:
        return await self._inbox.finish_delivery(item_id, owner=owner)

    async def renew(self, item_ids: Sequence[int], claim: Claim) -> set[int]:
        return await self._inbox.renew(item_ids, claim)

    async def release(self, item_id: int, *, owner: str) -> bool:
        return await self._inbox.release(item_id, owner=owner)

    async def fail(self, item_id: int, *, owner: str, error: str) -> bool:
        return await self._inbox.fail(item_id, owner=owner, error=error)

    async def get(self, item_id: int) -> InboxItem | None:
        return await self._inbox.get(item_id)

    async def find(self, *, channel: str, tenant: str, message_id: str) -> InboxItem | None:
        return await self._inbox.find(channel=channel, tenant=tenant, message_id=message_id)

    async def answer_of(self, item_id: int) -> Turn | None:
        return await self._inbox.answer_of(item_id)

    async def request_stop(self, item_id: int, *, by: str) -> ItemStatus | None:
        return await self._inbox.request_stop(item_id, by=by)

    async def stopped_among(self, item_ids: Sequence[int]) -> set[int]:
        return await self._inbox.stopped_among(item_ids)

    async def unfinished_in(self, conversation_id: str) -> InboxItem | None:
        return await self._inbox.unfinished_in(conversation_id)


class ObservedModel:
    """Times each streamed response (whole, and to its first text) and counts its tokens."""

    def __init__(self, model: ChatModel, telemetry: Telemetry) -> None:
        self._model = model
        self._telemetry = telemetry

    @property
    def name(self) -> str:
        return self._model.name

    async def stream(self, request: ChatRequest) -> AsyncIterator[ModelEvent]:
        start = time.monotonic()
        first: float | None = None
        outcome: ModelOutcome = "error"
        try:
            async for event in self._model.stream(request):
                match event:
                    case ModelText(text=text) if text and first is None:
                        first = time.monotonic() - start
                    case ModelUsage(prompt_tokens=prompt, completion_tokens=completion):
                        self._telemetry.model_tokens(self.name, prompt=prompt,
                                                     completion=completion)
                yield event
            outcome = "ok"
        except ModelTimeout:
            outcome = "timeout"
            raise
        except asyncio.CancelledError:  # the answer's deadline, or a shutdown
            outcome = "cancelled"
            raise
        finally:
            self._telemetry.model_call(self.name, outcome=outcome,
                                       seconds=time.monotonic() - start, first_token=first)

    async def aclose(self) -> None:
        """The wrapped model's, when it has one (the composition root closes models)."""
        aclose = getattr(self._model, "aclose", None)
        if aclose is not None:
            await aclose()


class ObservedLimiter:
    """Counts the messages a rate limit refused, by the channel of their sender."""

    def __init__(self, limiter: RateLimiter, telemetry: Telemetry) -> None:
        self._limiter = limiter
        self._telemetry = telemetry

    async def admit(self, sender_id: str, workspace: str) -> Admission:
        admission = await self._limiter.admit(sender_id, workspace)
        if isinstance(admission, Limited):
            self._telemetry.message(sender_id.split(":", 1)[0], "limited")
        return admission


class ObservedRetriever:
    """Times every knowledge search: the context's and the `search_knowledge` tool's."""

    def __init__(self, retriever: Retriever, telemetry: Telemetry) -> None:
        self._retriever = retriever
        self._telemetry = telemetry

    async def search(self, query: str, *, audience: Audience, limit: int) -> list[Passage]:
        start, ok = time.monotonic(), False
        try:
            passages = await self._retriever.search(query, audience=audience, limit=limit)
            ok = True
            return passages
        finally:
            self._telemetry.retrieval(seconds=time.monotonic() - start, ok=ok)


class FirstSigns:
    """Wraps the replier of one answer and tells when the person first saw something of
    it, and its first text: measured from the message's sending (the platform's clock),
    so waiting in the inbox counts, as it does for the person."""

    def __init__(self, replier: Replier, message: InboundMessage, telemetry: Telemetry) -> None:
        self._replier = replier
        self._channel = message.conversation.channel
        self._sent_at = message.sent_at
        self._telemetry = telemetry
        self._signed = self._texted = False

    async def send(self, event: ReplyEvent) -> None:
        await self._replier.send(event)
        if self._signed and (self._texted or not isinstance(event, TextDelta)):
            return
        since = max(0.0, (datetime.now(UTC) - self._sent_at).total_seconds())
        if not self._signed:
            self._signed = True
            self._telemetry.first_sign(self._channel, since)
        if isinstance(event, TextDelta) and not self._texted:
            self._texted = True
            self._telemetry.first_token(self._channel, since)
