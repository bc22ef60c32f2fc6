"""Context assembly: the system prompt, who is asking, what providers add, and history
within a budget.

History and profile arrive with the turn (`begin_turn` reads them in its transaction).
Providers (retrieval) are independent, so they run concurrently, each under its own
timeout; one that fails or is slow is logged and skipped rather than failing the answer.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from core.channels import SLACK_VIEWING, viewing
from core.knowledge import Audience, Passage
from core.messages import InboundMessage, Sender
from core.model import ChatMessage
from core.ports import Retriever, TokenCounter
from core.profiles import Profile
from core.threads import Conversation, Turn

log = logging.getLogger(__name__)

MESSAGE_FRAMING = 8  # tokens around a message in chat formats (OpenAI's is 3-4)


@dataclass(frozen=True, kw_only=True, slots=True)
class TurnInput:
    """A started turn: the message, its conversation, the thread's earlier turns and the
    sender's profile, as `begin_turn` read them in one transaction."""

    item_id: int
    message: InboundMessage
    conversation: Conversation
    history: tuple[Turn, ...] = ()
    profile: Profile | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class ContextPart:
    notes: tuple[str, ...] = ()
    notices: tuple[str, ...] = ()  # for the person, under the answer
    history: tuple[Turn, ...] = ()
    passages: tuple[Passage, ...] = ()


class ContextProvider(Protocol):
    """Adds to the context. A provider may also have `unavailable_note`: what the model
    is told when it fails, so the answer can say what it lacks; and `unavailable_notice`:
    what the person reads under the answer then, whatever the model makes of the note."""

    name: str

    async def provide(self, turn: TurnInput) -> ContextPart: ...


@dataclass(frozen=True, kw_only=True, slots=True)
class AssembledContext:
    system: ChatMessage
    history: tuple[ChatMessage, ...]
    user: ChatMessage
    passages: tuple[Passage, ...]
    dropped_turns: int
    notices: tuple[str, ...] = ()

    @property
    def messages(self) -> tuple[ChatMessage, ...]:
        return (self.system, *self.history, self.user)


def profile_note(turn: TurnInput) -> str | None:
    """Who the model is talking to, from the profile the channels filled in."""
    profile, sender = turn.profile, turn.message.sender
    name = (profile.name if profile else None) or sender.name
    facts = [f"name: {name}"] if name else []
    if profile is not None:
        facts += [
            f"{label}: {value}"
            for label, value in (
                ("job title", profile.title),
                ("department", profile.department),
                ("time zone", profile.time_zone),
            )
            if value
        ]
        if profile.time_zone:
            facts.append(f"their local time: {_local_time(profile.time_zone, turn)}")
        facts += [
            f"preference {k}: {v}" for k, v in sorted(profile.preferences.items())
            if k != SLACK_VIEWING  # where they look, not what they prefer: see viewing_note
        ]
    return "You are talking to a person with " + "; ".join(facts) + "." if facts else None


def viewing_note(turn: TurnInput) -> str | None:
    """Which Slack channel the person has open beside the assistant, so that "summarise
    this channel" needs no channel named. Only for a direct message from Slack: in a
    channel, "this channel" is that one, and elsewhere they are not looking at Slack."""
    channel = viewing(turn.profile)
    ref = turn.message.conversation
    if channel is None or ref.channel != "slack" or not turn.message.is_direct:
        return None
    return (
        f"In Slack, the person is viewing channel {channel} beside this conversation: "
        '"this channel" means it, and read_channel reads it when called without a channel.'
    )


class KnowledgeProvider:
    """Passages relevant to the message that everyone who will see the answer may read."""

    name = "knowledge"
    unavailable_note = (
        "The organisation's knowledge base could not be searched just now (it is "
        "unavailable). Say so in your answer: it does not draw on the organisation's "
        "documents."
    )
    unavailable_notice = "Not from your documents: the knowledge base could not be searched."

    def __init__(self, retriever: Retriever, *, limit: int = 5) -> None:
        self._retriever = retriever
        self._limit = limit

    async def provide(self, turn: TurnInput) -> ContextPart:
        audience = audience_of(turn.message)
        passages = await self._retriever.search(
            turn.message.text, audience=audience, limit=self._limit
        )
        return ContextPart(passages=tuple(passages))


def audience_of(message: InboundMessage) -> Audience:
    """A private conversation is read by its sender; a channel by everyone in it, so only
    what the channel may see counts, however much the sender could see elsewhere."""
    if message.is_direct:
        return person_audience(message.sender)
    ref = message.conversation
    channel = f"{ref.channel}:{ref.tenant}:{ref.conversation}"
    return Audience(kind="channel", principals=frozenset({channel}))


def person_audience(sender: Sender) -> Audience:
    """What one person may read: by their channel-scoped id, verified email and groups."""
    principals = {sender.id, *sender.groups} | ({sender.email} if sender.email else set())
    return Audience(kind="person", principals=frozenset(principals))


def _local_time(zone: str, turn: TurnInput) -> str:
    try:
        tz = ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        return "unknown"
    sent = turn.message.sent_at if turn.message.sent_at.tzinfo else datetime.now(UTC)
    return sent.astimezone(tz).strftime("%A %Y-%m-%d %H:%M")


class ContextAssembler:
    def __init__(
        self,
        *,
        system_prompt: str,
        providers: Sequence[ContextProvider],
        counter: TokenCounter,
        budget_tokens: int,
        provider_timeout: float = 2.0,
    ) -> None:
        self._system_prompt = system_prompt
        self._providers = tuple(providers)
        self._counter = counter
        self._budget = budget_tokens
        self._timeout = provider_timeout

    async def assemble(self, turn: TurnInput) -> AssembledContext:
        """History and profile come with the turn; providers (retrieval) add the rest."""
        if len(self._providers) <= 1:  # the usual case: no gather, no extra task
            parts = [await self._run(p, turn) for p in self._providers]
        else:
            parts = list(await asyncio.gather(*(self._run(p, turn) for p in self._providers)))
        own = (profile_note(turn), viewing_note(turn))
        notes = [*(n for n in own if n), *(n for part in parts for n in part.notes)]
        history = [*turn.history, *(t for part in parts for t in part.history)]
        passages = tuple(p for part in parts for p in part.passages)
        system = ChatMessage(role="system", content=self._system_text(notes, passages))
        user = ChatMessage(role="user", content=turn.message.text)
        bound = sum(most_tokens(m) for m in (system, user, *(t.as_message() for t in history)))
        if bound <= self._budget:  # fits whatever the tokenizer: nothing to count
            room = self._budget
            kept, dropped = trim_history(history, room, None)
        else:
            room = self._budget - self._counter.count_message(system)
            room -= self._counter.count_message(user)
            kept, dropped = trim_history(history, room, self._counter)
        if dropped:
            log.debug("context for message %s dropped %d old turns", turn.message.id, dropped)
        return AssembledContext(
            system=system,
            history=tuple(t.as_message() for t in kept),
            user=user,
            passages=passages,
            dropped_turns=dropped,
            notices=tuple(n for part in parts for n in part.notices),
        )

    async def _run(self, provider: ContextProvider, turn: TurnInput) -> ContextPart:
        try:
            async with asyncio.timeout(self._timeout):
                return await provider.provide(turn)
        except Exception:
            log.warning(
                "context provider %s failed for message %s; answering without it",
                provider.name,
                turn.message.id,
                exc_info=True,
            )
            note: str | None = getattr(provider, "unavailable_note", None)
            notice: str | None = getattr(provider, "unavailable_notice", None)
            return ContextPart(notes=(note,) if note else (), notices=(notice,) if notice else ())

    def _system_text(self, notes: Sequence[str], passages: Sequence[Passage]) -> str:
        sections = [self._system_prompt, *notes]
        if passages:
            numbered = "\n\n".join(
                f"[{n}] {p.title}{f' ({p.url})' if p.url else ''}\n{p.text}"
                for n, p in enumerate(passages, start=1)
            )
            sections.append(
                "Passages from the organisation's knowledge base. Cite the ones you use as "
                "[n]; say so when they do not answer the question.\n\n" + numbered
            )
        return "\n\n".join(sections)


def most_tokens(message: ChatMessage) -> int:
    """An upper bound of a message's tokens with no tokenizer: a byte-level BPE token (GPT,
    Llama 3 and most chat models) is at least one byte of UTF-8, plus the framing of a
    message. Counting exactly loads a tokenizer (tiktoken's cl100k: ~40 MB) and costs more
    than the rest of the context's assembly, so it is only done when this bound does not
    already fit the budget."""
    calls = sum(len(c.name) + len(c.arguments.encode()) for c in message.tool_calls)
    return MESSAGE_FRAMING + len(message.content.encode()) + calls


def trim_history(
    turns: Sequence[Turn], room: int, counter: TokenCounter | None
) -> tuple[list[Turn], int]:
    """Keep the newest whole exchanges (a user turn and the turns that answer it) that fit
    in `room` tokens (all of them, without counting, when `counter` is None). An exchange
    is kept or dropped whole so a tool call never loses its result; turns before the first
    user turn (a window cut mid-exchange) are dropped."""
    exchanges: list[list[Turn]] = []
    for t in turns:
        if t.role == "user" or not exchanges:
            exchanges.append([])
        exchanges[-1].append(t)
    if exchanges and exchanges[0][0].role != "user":
        exchanges.pop(0)
    kept: list[list[Turn]] = []
    for exchange in reversed(exchanges):
        if counter is None:
            kept.append(exchange)
            continue
        cost = sum(t.tokens or counter.count_message(t.as_message()) for t in exchange)
        if cost > room:
            break
        room -= cost
        kept.append(exchange)
    flat = [t for exchange in reversed(kept) for t in exchange]
    return flat, len(turns) - len(flat)
