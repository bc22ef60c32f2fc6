"""A database's worth of history at known ages, for the retention and export tests: rows
written straight into the tables, so each test states exactly how old everything is.

`seed_history` builds one scenario (ages against a 30-day retention) and says what a
purge must delete and keep."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Table, insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from adapters.sql.tables import (
    conversation_references,
    conversations,
    deliveries,
    feedback,
    inbox,
    profiles,
    rate_limits,
    sent_messages,
    ticket_comments,
    tickets,
    turns,
)
from core.messages import ConversationRef, InboundMessage, Sender, message_to_json

RETENTION = timedelta(days=30)
OLD, OLDER, RECENT = timedelta(days=40), timedelta(days=60), timedelta(days=1)


@dataclass
class Writer:
    """Rows at an age before `now`."""

    conn: AsyncConnection
    now: datetime
    _serial: int = field(default=0)

    async def _add(self, table: Table, **values: Any) -> Any:
        result = await self.conn.execute(insert(table).values(**values))
        key = result.inserted_primary_key
        return key[0] if key is not None else None

    async def conversation(
        self, ref: ConversationRef, *, created: timedelta, updated: timedelta,
        owner: str | None = None,
    ) -> str:
        conversation_id = uuid.uuid4().hex
        await self._add(conversations, id=conversation_id, channel=ref.channel,
                        tenant=ref.tenant, external_id=ref.conversation,
                        thread_id=ref.thread or "", owner=owner,
                        created_at=self.now - created, updated_at=self.now - updated)
        return conversation_id

    async def item(
        self, ref: ConversationRef, sender: str, text: str, *, age: timedelta, status: str,
    ) -> int:
        self._serial += 1
        message = InboundMessage(
            id=f"m{self._serial}", conversation=ref, sender=Sender(id=sender), text=text,
            sent_at=self.now - age, is_direct=ref.channel in ("web", "cli"),
        )
        item_id: int = await self._add(
            inbox, channel=ref.channel, tenant=ref.tenant, message_key=message.id,
            payload=message_to_json(message), status=status, created_at=self.now - age,
            updated_at=self.now - age,
        )
        return item_id

    async def turn(
        self, conversation_id: str, role: str, content: str, *, age: timedelta,
        item: int | None = None,
    ) -> int:
        turn_id: int = await self._add(turns, conversation_id=conversation_id, role=role,
                                       content=content, inbox_item_id=item,
                                       created_at=self.now - age)
        return turn_id

    async def exchange(
        self, conversation_id: str, ref: ConversationRef, sender: str, question: str,
        answer: str, *, age: timedelta, status: str = "done",
    ) -> tuple[int, int, int]:
        """A message, its inbox item and its answer: (item, user turn, assistant turn)."""
        item = await self.item(ref, sender, question, age=age, status=status)
        asked = await self.turn(conversation_id, "user", question, age=age, item=item)
        answered = await self.turn(conversation_id, "assistant", answer, age=age, item=item)
        return item, asked, answered

    async def rating(self, turn_id: int, rater: str, rating: str, *, age: timedelta) -> None:
        await self._add(feedback, turn_id=turn_id, rater=rater, rating=rating,
                        created_at=self.now - age, updated_at=self.now - age)

    async def sent(self, ref: ConversationRef, message_id: str, turn_id: int, *,
                   age: timedelta) -> None:
        await self._add(sent_messages, channel=ref.channel, tenant=ref.tenant,
                        conversation=ref.conversation, message_id=message_id, turn_id=turn_id,
                        created_at=self.now - age)

    async def reference(self, ref: ConversationRef, *, age: timedelta) -> None:
        await self._add(conversation_references, channel=ref.channel, tenant=ref.tenant,
                        conversation=ref.conversation, thread=ref.thread or "",
                        reference={"serviceUrl": "https://smba.example/"},
                        updated_at=self.now - age)

    async def profile(self, person: str, *, name: str, email: str) -> None:
        await self._add(profiles, id=person, name=name, email=email, preferences={},
                        updated_at=self.now)

    async def rate_window(self, key: str, *, ended: timedelta) -> None:
        await self._add(rate_limits, key=key, count=3,
                        expires_at=(self.now - ended).timestamp())

    async def delivery(self, key: str, *, age: timedelta) -> None:
        await self._add(deliveries, channel="slack", key=key, received_at=self.now - age)

    async def ticket(self, title: str, requester: str, *, status: str, age: timedelta,
                     origin: ConversationRef | None = None) -> int:
        ticket_id: int = await self._add(
            tickets, title=title, description=f"{title}, in detail", priority="medium",
            status=status, requester=requester,
            origin_channel=origin.channel if origin else None,
            origin_tenant=origin.tenant if origin else None,
            origin_conversation=origin.conversation if origin else None,
            origin_thread=origin.thread if origin else None,
            created_at=self.now - age, updated_at=self.now - age,
        )
        return ticket_id

    async def comment(self, ticket_id: int, author: str, text: str, *, age: timedelta) -> None:
        await self._add(ticket_comments, ticket_id=ticket_id, author=author, text=text,
                        created_at=self.now - age)


ALICE = "web:local:alice"
WEB = ConversationRef(channel="web", tenant="local", conversation="alice-1")
LONG = ConversationRef(channel="web", tenant="local", conversation="alice-2")
WAITING = ConversationRef(channel="slack", tenant="T1", conversation="D1")
TEAMS = ConversationRef(channel="teams", tenant="tn", conversation="a:1")
TEAMS_OTHER = ConversationRef(channel="teams", tenant="tn", conversation="a:2")


@dataclass
class History:
    """What `seed_history` wrote, and what a 30-day purge must leave."""

    gone_conversation: str
    long_conversation: str
    waiting_conversation: str
    kept_turns: set[int]
    held_turn: int  # written by a message still being answered
    expected: dict[str, int]  # rows a 30-day purge deletes, per kind


async def seed_history(engine: AsyncEngine, now: datetime) -> History:
    async with engine.begin() as conn:
        w = Writer(conn, now)
        # Quiet for 40 days: the conversation and everything hanging from it goes.
        gone = await w.conversation(WEB, created=OLD, updated=OLD, owner=ALICE)
        _, _, answer = await w.exchange(gone, WEB, ALICE, "old question", "old answer", age=OLD)
        await w.rating(answer, ALICE, "up", age=OLD)
        await w.sent(TEAMS, "activity-1", answer, age=OLD)
        # Talked in yesterday: its 60-day-old exchange goes, the conversation stays.
        long = await w.conversation(LONG, created=OLDER, updated=RECENT, owner=ALICE)
        await w.exchange(long, LONG, ALICE, "first", "first answer", age=OLDER)
        _, asked, answered = await w.exchange(long, LONG, ALICE, "latest", "latest answer",
                                              age=RECENT)
        # Work still waiting or being answered is never purged, nor what it wrote.
        waiting = await w.conversation(WAITING, created=OLD, updated=OLD)
        await w.item(WAITING, "slack:T1:U1", "still waiting", age=OLD, status="pending")
        claimed = await w.item(WAITING, "slack:T1:U1", "being answered", age=OLD,
                               status="processing")
        held = await w.turn(waiting, "user", "being answered", age=OLD, item=claimed)
        await w.item(WAITING, "slack:T1:U1", "gave up", age=OLD, status="failed")
        await w.delivery("Ev-old", age=OLD)
        await w.delivery("Ev-new", age=timedelta(hours=1))
        await w.rate_window(f"user/{ALICE}", ended=OLD)
        await w.rate_window("workspace/web:local", ended=-timedelta(seconds=30))
        closed = await w.ticket("Old printer", ALICE, status="closed", age=OLD)
        await w.comment(closed, ALICE, "fixed, thanks", age=OLD)
        await w.ticket("Open for ages", ALICE, status="open", age=OLD, origin=TEAMS)
        await w.ticket("Closed yesterday", ALICE, status="closed", age=RECENT)
        # A ticket not closed still needs its thread's reference for status notices.
        await w.reference(TEAMS, age=OLD)
        await w.reference(TEAMS_OTHER, age=OLD)
    return History(
        gone_conversation=gone, long_conversation=long, waiting_conversation=waiting,
        kept_turns={asked, answered, held}, held_turn=held,
        expected={"feedback": 1, "sent_messages": 1, "turns": 4, "conversations": 1,
                  "inbox": 3, "deliveries": 1, "conversation_references": 1, "tickets": 1,
                  "rate_limits": 1},
    )
