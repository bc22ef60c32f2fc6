"""One turn: from a claimed inbox item to a persisted, delivered answer."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from core.context import ContextAssembler, TurnInput, audience_of
from core.inbox import InboxItem
from core.knowledge import PassageBook, cited
from core.messages import Citation
from core.model import ChatMessage, ChatRequest, ModelText, ModelToolCalls, ModelUsage, ToolCall
from core.ports import ChatModel, ConversationStore, Replier, TokenCounter
from core.replies import ReplyDone, Status, TextDelta, ToolProgress
from core.threads import NewTurn
from core.tools.registry import ToolContext, ToolRegistry, ToolServices

log = logging.getLogger(__name__)


@dataclass(kw_only=True)
class _Round:
    text: str = ""
    calls: tuple[ToolCall, ...] = ()
    usage: list[ModelUsage] = field(default_factory=list)


class Orchestrator:
    def __init__(
        self,
        *,
        conversations: ConversationStore,
        assembler: ContextAssembler,
        model: ChatModel,
        tools: ToolRegistry,
        services: ToolServices,
        counter: TokenCounter,
        max_tool_rounds: int = 5,
    ) -> None:
        self._conversations = conversations
        self._assembler = assembler
        self._model = model
        self._tools = tools
        self._services = services
        self._counter = counter
        self._max_tool_rounds = max_tool_rounds

    async def answer(self, item: InboxItem, replier: Replier) -> ReplyDone | None:
        """Answer one message through `replier`; returns None if a previous attempt
        already answered it (a crash before the item was marked done). Raises on failure,
        after keeping the person's message; the caller apologises and marks the item."""
        message = item.message
        owner = message.sender.id if message.is_direct else None
        conversation = await self._conversations.get_or_create(message.conversation, owner=owner)
        # Only a retry can find turns of its own: an earlier attempt stored the message,
        # and perhaps an answer it could not mark done before its process died.
        earlier = await self._conversations.turns_for_item(item.id) if item.attempts > 1 else []
        if any(t.role == "assistant" and not t.tool_calls for t in earlier):
            log.info("message %s was already answered; not answering twice", message.id)
            return None
        if not earlier:
            user = ChatMessage(role="user", content=message.text)
            await self._conversations.add_turns(
                conversation.id, [self._new_turn(user, item_id=item.id)]
            )

        await replier.send(Status(text="Thinking…"))
        context = await self._assembler.assemble(
            TurnInput(item_id=item.id, message=message, conversation=conversation)
        )
        messages = list(context.messages)
        sources = PassageBook(context.passages)
        tool_ctx = ToolContext(
            sender=message.sender,
            conversation=message.conversation,
            message_id=message.id,
            services=self._services,
            audience=audience_of(message),
            sources=sources,
        )
        new_turns: list[NewTurn] = []
        shown: list[str] = []
        for round_no in range(self._max_tool_rounds + 1):
            # The last round offers no tools, so the model has to answer in words.
            tools = self._tools.specs() if round_no < self._max_tool_rounds else ()
            request = ChatRequest(
                messages=tuple(messages), tools=tools, passages=sources.passages
            )
            result = await self._stream_round(request, replier, separate=bool(shown))
            for usage in result.usage:
                log.debug(
                    "model %s used %d prompt and %d completion tokens for message %s",
                    self._model.name, usage.prompt_tokens, usage.completion_tokens, message.id,
                )
            if result.text:
                shown.append(result.text)
            if not result.calls:
                break
            assistant = ChatMessage(role="assistant", content=result.text, tool_calls=result.calls)
            results = await self._run_tools(result.calls, tool_ctx, replier)
            messages += [assistant, *results]
            new_turns += [self._new_turn(m, item_id=item.id) for m in (assistant, *results)]

        final_text = result.text
        citations = cited("\n\n".join(shown), sources.passages)
        final = ChatMessage(role="assistant", content=final_text)
        stored = await self._conversations.add_turns(
            conversation.id,
            [*new_turns, self._new_turn(final, item_id=item.id, citations=citations)],
        )
        done = ReplyDone(text="\n\n".join(shown), citations=citations, turn_id=stored[-1].id)
        await replier.send(done)
        return done

    async def _stream_round(self, request: ChatRequest, replier: Replier, *, separate: bool) -> _Round:
        result = _Round()
        async for event in self._model.stream(request):
            match event:
                case ModelText(text=text) if text:
                    if separate and not result.text:
                        await replier.send(TextDelta(text="\n\n"))
                    result.text += text
                    await replier.send(TextDelta(text=text))
                case ModelText():
                    pass
                case ModelToolCalls(calls=calls):
                    result.calls = calls
                case ModelUsage():
                    result.usage.append(event)
        return result

    async def _run_tools(
        self, calls: tuple[ToolCall, ...], ctx: ToolContext, replier: Replier
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
            tokens=self._counter.count_message(message),
            citations=citations,
            inbox_item_id=item_id,
        )
