"""Typed `/ticket …` in a chat answered within the request (the web API; the terminal
uses it too): the ticket service answers, not the model, and the exchange is kept in the
conversation like any turn, so a later question about "the ticket I just opened" has it.

The message goes through the inbox as every message does: a retried request with the same
message id is a `Duplicate` and gets the stored answer, never a second ticket.
"""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta

from core.inbox import Duplicate, InboxItem, Recorded, RecordOutcome, Requeued
from core.messages import InboundMessage
from core.ports import ConversationStore, Inbox, Replier
from core.replies import ReplyDone, ReplyFailed, TextDelta
from core.threads import NewTurn
from core.tickets.commands import is_ticket_command, run_ticket_command
from core.tickets.service import TicketService

log = logging.getLogger(__name__)

APOLOGY = "Sorry, I couldn't do that with your ticket just now. Please try again."


class TicketCommands:
    def __init__(
        self, *, tickets: TicketService, inbox: Inbox, conversations: ConversationStore,
        owner: str, lease: timedelta,
    ) -> None:
        self._tickets = tickets
        self._inbox = inbox
        self._conversations = conversations
        self._owner = owner  # the worker's: the item is claimed as if the worker took it
        self._lease = lease

    @staticmethod
    def handles(message: InboundMessage) -> bool:
        return is_ticket_command(message.text)

    async def answer_now(
        self, message: InboundMessage, replier: Replier, *, origin_link: str | None = None
    ) -> RecordOutcome:
        """Like `Worker.answer_now`: record (claimed), answer, settle; a duplicate is not
        answered again and the caller decides what to show for it."""
        outcome = await self._inbox.record(message, owner=self._owner, lease=self._lease)
        match outcome:
            case Recorded(item=item) | Requeued(item=item):
                await self._answer(item, replier, origin_link)
            case Duplicate():
                pass
        return outcome

    async def _answer(self, item: InboxItem, replier: Replier, origin_link: str | None) -> None:
        message = item.message
        try:
            conv = await self._conversations.get_or_create(
                message.conversation, owner=message.sender.id
            )
            earlier = await self._conversations.turns_for_item(item.id)
            answered = next((t for t in earlier if t.role == "assistant"), None)
            if answered is not None:  # stored before a crash kept it from being marked done
                done = ReplyDone(text=answered.content, turn_id=answered.id, feedback=False)
            else:
                text = await run_ticket_command(
                    self._tickets, message.sender, message.text,
                    origin=message.conversation, origin_link=origin_link,
                )
                asked = NewTurn(role="user", content=message.text, inbox_item_id=item.id)
                answer = NewTurn(role="assistant", content=text, inbox_item_id=item.id)
                stored = await self._conversations.add_turns(
                    conv.id, [answer] if earlier else [asked, answer]
                )
                done = ReplyDone(text=text, turn_id=stored[-1].id, feedback=False)
        except Exception:
            reference = uuid.uuid4().hex[:8]
            log.exception("ticket command %s (inbox item %d) failed, reference %s",
                          message.id, item.id, reference)
            await replier.send(ReplyFailed(text=APOLOGY, reference=reference))
            await self._inbox.fail(
                item.id, owner=self._owner, error=f"ticket command ({reference})"
            )
            return
        # The text as one delta, then done: the same events as a model's answer, so a
        # streaming page or the terminal shows it the usual way.
        await replier.send(TextDelta(text=done.text))
        await replier.send(done)
        await self._inbox.complete(item.id, owner=self._owner)
