"""The ports the core depends on. Adapters implement them; `bots/` chooses which."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import Any, Literal, Protocol

from core.apikeys import ApiKey, NewKey
from core.channels import ChannelExcerpt
from core.feedback import Feedback, Rating
from core.groups import GroupSummary
from core.inbox import (
    Acceptance,
    AcceptOutcome,
    Backlog,
    Claim,
    InboxItem,
    ItemStatus,
    TurnEnd,
    TurnStart,
)
from core.knowledge import Audience, Chunk, Passage
from core.limits import Admission
from core.messages import ConversationRef, Sender
from core.model import ChatMessage, ChatRequest, ModelEvent
from core.profiles import Profile
from core.replies import ReplyEvent
from core.threads import Conversation, ConversationSummary, ListPosition, NewTurn, Turn


class ConversationStore(Protocol):
    """Reading threads (the answer path writes them through the `Inbox` units)."""

    async def get_or_create(self, ref: ConversationRef, *, owner: str | None) -> Conversation: ...

    async def get(self, conversation_id: str) -> Conversation | None: ...

    async def find(self, ref: ConversationRef) -> Conversation | None:
        """The stored conversation for a platform thread, if we have ever answered in it."""
        ...

    async def latest(self, *, channel: str, owner: str) -> Conversation | None:
        """The most recently active conversation of `owner` on `channel`."""
        ...

    async def owned(
        self, *, channel: str, owner: str, limit: int, after: ListPosition | None = None
    ) -> list[ConversationSummary]:
        """`owner`'s conversations on `channel`, most recently active first, starting after
        `after` (a page's last one)."""
        ...

    async def recent_turns(self, conversation_id: str, limit: int) -> list[Turn]:
        """The last `limit` turns, oldest first; costs O(limit) whatever the thread's size."""
        ...

    async def add_turns(self, conversation_id: str, turns: Sequence[NewTurn]) -> list[Turn]:
        """Append turns atomically: all of them or none."""
        ...



class Inbox(Protocol):
    """The answer path's units of work (`core/inbox.py`), each one transaction."""

    async def accept(self, acceptance: Acceptance) -> AcceptOutcome:
        """Dedupe and record one delivery (the only write before an acknowledgement)."""
        ...

    async def begin_turns(self, claim: Claim, *, limit: int) -> list[TurnStart]:
        """Claim up to `limit` pending items, and items whose lease expired (their process
        died), oldest first, and start each."""
        ...

    async def begin_turn(self, item_id: int, claim: Claim) -> TurnStart | None:
        """Claim and start one item now, if it is pending or its lease expired."""
        ...

    async def finish_turn(self, end: TurnEnd) -> list[Turn]:
        """Store the answer's turns, name the conversation (`end.title`, if it has no
        name yet) and mark the item answered (still held, while it is delivered),
        atomically. Raises `LeaseLost` (and stores nothing) if another worker
        took the item over."""
        ...

    async def record_round(self, end: TurnEnd) -> list[Turn]:
        """Store one tool round (the model's turn with its calls, then their results) of
        an item still being answered, so that a retry after a crash continues from it
        instead of running its tools again. Raises `LeaseLost` (and stores nothing) if
        another worker took the item over."""
        ...

    async def note_reply(self, item_id: int, reply_id: str, *, owner: str) -> bool:
        """The platform's id of the message now showing the item's answer (a Slack
        stream), kept so a retry after a crash finishes that message. Only while `owner`
        still holds the item (even past its lease): whether it was kept."""
        ...

    async def finish_delivery(self, item_id: int, *, owner: str) -> bool:
        """The answer reached the person (or was apologised for): the item is done. Until
        then a crash leaves it answered, and whoever claims it next delivers the stored
        answer instead of answering again."""
        ...

    async def renew(self, item_ids: Sequence[int], claim: Claim) -> set[int]:
        """Extend the lease of the items still held by `claim.owner`; which ones were."""
        ...

    async def release(self, item_id: int, *, owner: str) -> bool:
        """Give an unfinished claim back (shutdown) so another worker takes it."""
        ...

    async def fail(self, item_id: int, *, owner: str, error: str) -> bool:
        """Mark failed: kept, and retried when the same message is delivered again."""
        ...

    async def get(self, item_id: int) -> InboxItem | None: ...

    async def find(self, *, channel: str, tenant: str, message_id: str) -> InboxItem | None:
        """The item of a message already delivered, if any."""
        ...

    async def answer_of(self, item_id: int) -> Turn | None:
        """The answer stored for an item, if it has one."""
        ...

    async def request_stop(self, item_id: int, *, by: str) -> ItemStatus | None:
        """Mark an item stopped by `by` (a sender id), if it is still waiting or being
        answered: the status it had ("pending": it is done now, nobody having started on
        it; "processing"), or None when there was nothing to stop. Processes sharing a
        PostgreSQL database hear of it at COMMIT."""
        ...

    async def stopped_among(self, item_ids: Sequence[int]) -> set[int]:
        """Of these items, those whose answer someone stopped: how a worker learns of a
        stop whose signal was lost."""
        ...

    async def unfinished_in(self, conversation_id: str) -> InboxItem | None:
        """The newest item of the conversation that is waiting or being answered."""
        ...


class Exclusive(Protocol):
    """At most one holder per key across every process of a deployment (a Teams chat's
    one stream). A holder that dies lets go by itself."""

    async def take(self, key: str) -> bool:
        """Hold `key` if nobody does; whether this call got it."""
        ...

    async def release(self, key: str) -> None: ...


class DeliveryLog(Protocol):
    """Platform delivery ids seen recently (Slack's event_id), to drop retries early."""

    async def first_delivery(self, channel: str, key: str) -> bool:
        """Record `key`; False if it was recorded before."""
        ...

    async def seen(self, channel: str, key: str) -> bool:
        """Whether `key` was recorded (and not yet forgotten), recording nothing."""
        ...

    async def forget_before(self, when: datetime) -> int:
        """Drop keys recorded before `when` (platforms stop retrying long before)."""
        ...


class FeedbackStore(Protocol):
    async def record(self, feedback: Feedback) -> bool:
        """Store (or change) a rater's rating of a turn. False, and nothing stored, when
        the turn is not an answer in `feedback.where`."""
        ...

    async def given_by(self, rater: str, turn_ids: Sequence[int]) -> dict[int, Rating]:
        """turn id → `rater`'s rating, for those of `turn_ids` they rated."""
        ...


class SentMessages(Protocol):
    """Which answer (turn) a message the bot sent carried, for platforms whose feedback
    names the message rather than the answer."""

    async def remember(self, where: ConversationRef, message_id: str, turn_id: int) -> None: ...

    async def turn_of(self, where: ConversationRef, message_id: str) -> int | None: ...


class ProfileStore(Protocol):
    async def get(self, sender_id: str) -> Profile | None: ...

    async def upsert(self, profile: Profile) -> Profile:
        """Merge what a channel knows into the stored profile and return the result."""
        ...


class ChatModel(Protocol):
    @property
    def name(self) -> str: ...

    def stream(self, request: ChatRequest) -> AsyncIterator[ModelEvent]:
        """Stream one response. Raises `ModelError` (or `ModelTimeout`) on failure."""
        ...


class TokenCounter(Protocol):
    def count(self, text: str) -> int: ...

    def count_message(self, message: ChatMessage) -> int: ...


class Retriever(Protocol):
    async def search(self, query: str, *, audience: Audience, limit: int) -> list[Passage]:
        """Passages relevant to `query` that everyone in `audience` may read."""
        ...


class ChannelHistory(Protocol):
    """A chat channel's recent messages, read for one person (`core/channels.py`)."""

    async def read(
        self, channel: str, *, reader: Sender, where: ConversationRef, limit: int
    ) -> ChannelExcerpt:
        """At most `limit` of `channel`'s latest messages, oldest first, when both `reader`
        (the verified sender, never anyone the model names) and the bot may see the
        channel; raises `ToolError` saying why not otherwise. `where` is the conversation
        the request came from (its workspace)."""
        ...


class DocumentReader(Protocol):
    """One indexed document, read whole, for a person to check what an answer cited."""

    async def passages_of(self, source: str, *, audience: Audience, limit: int) -> list[Passage]:
        """The document's first `limit` passages in order, if everyone in `audience`
        may read them; [] when it is not indexed or hidden alike."""
        ...


class KnowledgeStore(Protocol):
    """The write side of the knowledge index (the read side is `Retriever`)."""

    async def upsert(self, chunks: Sequence[Chunk]) -> None:
        """Insert or overwrite passages (by `Chunk.id`)."""
        ...

    async def delete_source(self, source: str) -> int:
        """Remove every passage of one document; how many were removed."""
        ...

    async def sources(self) -> dict[str, str]:
        """Every indexed document: source → the hash on its first passage (position 0,
        written last), or "" when that passage is missing (a write cut short)."""
        ...

    async def count(self) -> int:
        """How many passages are indexed."""
        ...


class Embedder(Protocol):
    """A dense embedding model (optional: without one, retrieval is BM25 alone)."""

    @property
    def name(self) -> str: ...

    async def embed(self, texts: Sequence[str]) -> list[list[float]]: ...


class Replier(Protocol):
    """Bound to one conversation (and thread); renders reply events for its platform."""

    async def send(self, event: ReplyEvent) -> None: ...


class ReplierFactory(Protocol):
    def replier_for(self, item: InboxItem) -> Replier:
        """Rebuild a replier from a stored message, e.g. when retrying after a crash."""
        ...


class ConversationReferences(Protocol):
    """How to reach a conversation when no message asks (a channel's own reference data:
    for Teams, the conversation reference with its service URL)."""

    async def remember(self, where: ConversationRef, reference: dict[str, Any]) -> None: ...

    async def get(self, where: ConversationRef) -> dict[str, Any] | None: ...


class ThreadNotifier(Protocol):
    """Posts a short message into a conversation (and thread) on the bot's own initiative,
    not as the answer to a message: a ticket's status changed, say."""

    async def notify(
        self, where: ConversationRef, text: str, *, mention: Sender | None = None
    ) -> None:
        """`text` is CommonMark and reads well on its own. `mention` is the person it is
        for; a channel that can address people (Slack `<@U…>`, a Teams mention) does so,
        others may ignore it."""
        ...


class InboxBacklog(Protocol):
    """How much waits in the inbox, read when metrics are scraped (never on the answer
    path)."""

    async def read(self) -> Backlog: ...


# How a message ended, as counted: answered; stopped (by the person, or an admin);
# apologised (an error or too many attempts);
# withdrawn (another worker took it over and answers it); released (shutdown: another
# process answers it); and the deliveries refused before any answer.
MessageOutcome = Literal[
    "answered", "stopped", "apologised", "withdrawn", "released",
    "duplicate", "not_followed", "not_yours", "limited",
]

ModelOutcome = Literal["ok", "error", "timeout", "cancelled"]


class Telemetry(Protocol):
    """What the answer path tells an operator: counts and timings, no content. Each
    method returns at once and never raises; `NoTelemetry` (core/telemetry.py) is the
    default, adapters/metrics the Prometheus one."""

    def received(self, channel: str) -> None:
        """A delivery of a message reached the inbox (before it is known new)."""
        ...

    def message(self, channel: str, outcome: MessageOutcome, *, detail: str = "") -> None:
        """How a message ended. `detail`: the status a duplicate found its item in, or
        why an apology was sent."""
        ...

    def first_sign(self, channel: str, seconds: float) -> None:
        """From a message's sending to the first thing the person saw of its answer."""
        ...

    def first_token(self, channel: str, seconds: float) -> None:
        """From a message's sending to the first text of its answer."""
        ...

    def model_call(
        self, model: str, *, outcome: ModelOutcome, seconds: float, first_token: float | None,
    ) -> None:
        """One streamed model response, start to end (and to its first text); cancelled:
        cut short by the answer's deadline or a shutdown."""
        ...

    def model_tokens(self, model: str, *, prompt: int, completion: int) -> None: ...

    def tool_call(self, tool: str, *, ok: bool) -> None: ...

    def retrieval(self, *, seconds: float, ok: bool) -> None: ...


class ApiKeyStore(Protocol):
    """API keys kept in the database: looked up on every request, so a revoked or
    expired key stops working at once in every process."""

    async def create(self, key: NewKey, *, user: str, expires_at: datetime | None) -> ApiKey: ...

    async def list(self) -> list[ApiKey]: ...

    async def revoke(self, key_id: str) -> ApiKey | None:
        """The key as revoked, or None when there is no such key."""
        ...

    async def user_of(self, secret: str) -> str | None:
        """The user an active key belongs to; None for an unknown, expired or revoked key."""
        ...


class GroupStore(Protocol):
    """Groups kept in SQL (`core/groups.py`); names and members arrive validated."""

    async def add(self, group: str, members: Sequence[str]) -> int:
        """Add members (those already in count once); how many were new."""
        ...

    async def remove(self, group: str, members: Sequence[str]) -> int:
        """How many of `members` were in the group (a group with none left is gone)."""
        ...

    async def members(self, group: str) -> list[str]:
        """Sorted; empty for a group that does not exist."""
        ...

    async def groups_of(self, sender: Sender) -> frozenset[str]:
        """The groups listing the sender by channel-scoped id or verified email."""
        ...

    async def list(self) -> list[GroupSummary]: ...  # last: it shadows `list` below it


class RateLimiter(Protocol):
    async def admit(self, sender_id: str, workspace: str) -> Admission:
        """Count one message from `sender_id` in `workspace`; `Limited` when it is one too many."""
        ...
