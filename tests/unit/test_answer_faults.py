"""What a person sees when answering goes wrong, and what stays retryable: the answer's
deadline, the hard limit on tool rounds, and apologies that say what happened. Through
the real composition root with a scripted model and the in-memory stores."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bots.bootstrap import Switchboard, bootstrap
from bots.settings import load_settings
from core.errors import (
    ModelError,
    ModelInterrupted,
    ModelTimeout,
    NoAnswer,
    StorageError,
)
from core.inbox import Acceptance, Recorded, Requeued, TurnEnd
from core.messages import ConversationRef, InboundMessage, Sender
from core.threads import Turn
from core.replies import ReplyDone, ReplyFailed, TextDelta, ToolProgress
from tests.fakes.scripted import STALL, RecordingReplier, ScriptedChatModel, calls, says
from tests.fakes.stores import in_memory_stores

ADA = Sender(id="test:t1:ada", name="Ada Lovelace", email="ada@example.com")
ROUNDS = 2


def message(text: str, *, mid: str = "m1") -> InboundMessage:
    return InboundMessage(
        id=mid,
        conversation=ConversationRef(channel="test", tenant="t1", conversation="dm", thread="th1"),
        sender=ADA, text=text, sent_at=datetime.now(UTC), is_direct=True,
    )


@pytest.fixture
def model() -> ScriptedChatModel:
    return ScriptedChatModel()


@pytest.fixture
async def sb(tmp_path: Path, model: ScriptedChatModel) -> AsyncIterator[Switchboard]:
    settings = load_settings(data_dir=tmp_path, max_tool_rounds=ROUNDS, answer_deadline=0.5)
    async with bootstrap(
        settings, model=model, stores=in_memory_stores(), open_knowledge=False
    ) as services:
        yield services


async def answer(sb: Switchboard, text: str) -> tuple[RecordingReplier, Recorded | Requeued]:
    assert sb.worker is not None
    replier = RecordingReplier()
    outcome = await sb.worker.answer_now(Acceptance(message=message(text)), replier)
    assert isinstance(outcome, Recorded | Requeued)
    return replier, outcome


def apology(replier: RecordingReplier) -> str:
    last = replier.events[-1]
    assert isinstance(last, ReplyFailed), replier.kinds()
    return last.text


async def stored(sb: Switchboard) -> list[tuple[str, str]]:
    conv = await sb.conversations.latest(channel="test", owner=ADA.id)
    assert conv is not None
    return [(t.role, t.content) for t in await sb.conversations.recent_turns(conv.id, 20)]


async def status_of(sb: Switchboard, outcome: Recorded | Requeued) -> str:
    item = await sb.inbox.get(outcome.item.id)
    assert item is not None
    return item.status


async def test_an_answer_without_the_unreachable_knowledge_base_says_so_under_it(
    tmp_path: Path, model: ScriptedChatModel
) -> None:
    class Unreachable:
        async def search(self, *_: object, **__: object) -> list[object]:
            raise StorageError("the Qdrant server at http://qdrant:6333 is unavailable")

    model.steps = [says("Restart the router.")]
    settings = load_settings(data_dir=tmp_path)
    async with bootstrap(settings, model=model, stores=in_memory_stores(),
                         retriever=Unreachable(), open_knowledge=False) as services:
        replier, _ = await answer(services, "my wifi is down")

    done = replier.events[-1]
    notice = "_Not from your documents: the knowledge base could not be searched._"
    assert isinstance(done, ReplyDone) and done.text == f"Restart the router.\n\n{notice}"
    assert "".join(e.text for e in replier.events if isinstance(e, TextDelta)) == done.text
    assert "could not be searched" in model.requests[0].messages[0].content  # the model knew
    assert (await stored(services))[-1] == ("assistant", done.text)


# ----- tool rounds: a hard limit -----


async def test_in_the_last_round_no_tools_are_offered_and_none_run_whatever_the_model_asks(
    sb: Switchboard, model: ScriptedChatModel
) -> None:
    ask = calls(("get_user_info", "{}"))
    model.steps = [ask, ask, calls(("get_user_info", "{}"), text="Here is what I found.")]
    replier, outcome = await answer(sb, "loop")

    running = [e for e in replier.events if isinstance(e, ToolProgress) and e.state == "running"]
    assert len(running) == ROUNDS  # the third request's call never ran
    assert [bool(r.tools) for r in model.requests] == [True, True, False]
    last = model.requests[-1].messages[-1]
    assert last.role == "system" and "no tools are available" in last.content
    done = replier.events[-1]
    assert isinstance(done, ReplyDone) and done.text == "Here is what I found."
    assert (await stored(sb))[-1] == ("assistant", "Here is what I found.")
    assert await status_of(sb, outcome) == "done"


async def test_a_turn_with_nothing_to_say_is_failed_with_an_apology_and_stays_retryable(
    sb: Switchboard, model: ScriptedChatModel
) -> None:
    ask = calls(("get_user_info", "{}"))
    model.steps = [ask, ask, ask]  # tool calls to the end, never a word
    replier, outcome = await answer(sb, "loop")

    assert apology(replier) == NoAnswer("").user_message
    # The tool rounds that ran are kept (what they did happened); no empty answer is.
    rounds = [("assistant", ""), ("tool", '{"id":"test:t1:ada","name":"Ada Lovelace",'
              '"email":"ada@example.com"}')] * ROUNDS
    assert await stored(sb) == [("user", "loop"), *rounds]
    assert await status_of(sb, outcome) == "failed"

    model.steps = [says("Second time lucky.")]
    again, _ = await answer(sb, "loop")  # the platform's redelivery, or the person again
    assert again.events[-1].kind == "done"
    assert await stored(sb) == [("user", "loop"), *rounds, ("assistant", "Second time lucky.")]
    # The retry goes on after the rounds already done: their tools never run again, and
    # with every round used, the model is asked for words.
    assert not any(isinstance(e, ToolProgress) for e in again.events)
    retry = model.requests[-1]
    assert not retry.tools
    assert [m.role for m in retry.messages[-6:]] == [
        "user", "assistant", "tool", "assistant", "tool", "system"]


async def test_an_empty_answer_is_not_stored_as_one(
    sb: Switchboard, model: ScriptedChatModel
) -> None:
    model.steps = [says("  ")]
    replier, outcome = await answer(sb, "hello?")
    assert apology(replier) == NoAnswer("").user_message
    assert await status_of(sb, outcome) == "failed"


async def test_when_a_tool_failed_and_no_answer_came_the_apology_names_it(
    sb: Switchboard, model: ScriptedChatModel
) -> None:
    bad = calls(("get_user_info", '{"user_id": "someone-else"}'))  # refused: invalid arguments
    model.steps = [bad, bad, says("")]
    replier, _ = await answer(sb, "who am I?")
    text = apology(replier)
    assert "Looking up your profile" in text and "couldn't finish the answer" in text


# ----- the deadline -----


async def test_a_model_that_never_answers_gets_an_apology_at_the_deadline(
    sb: Switchboard, model: ScriptedChatModel
) -> None:
    model.steps = [[STALL]]
    replier, outcome = await answer(sb, "anyone there?")
    assert replier.kinds()[-1] == "failed"
    assert "delta" not in replier.kinds()
    assert apology(replier) == ModelTimeout.user_message
    assert await status_of(sb, outcome) == "failed"
    assert await stored(sb) == [("user", "anyone there?")]


async def test_a_deadline_reached_mid_answer_says_the_answer_above_is_incomplete(
    sb: Switchboard, model: ScriptedChatModel
) -> None:
    model.steps = [[*says("The first half"), STALL]]
    replier, outcome = await answer(sb, "tell me everything")
    assert replier.text() == "The first half"
    assert apology(replier) == ModelInterrupted("", timed_out=True).user_message
    assert "incomplete" in apology(replier)
    assert await status_of(sb, outcome) == "failed"


async def test_the_deadline_covers_every_round_not_each_one(
    sb: Switchboard, model: ScriptedChatModel
) -> None:
    """Tools that keep the model busy round after round still end at the deadline."""
    model.steps = [calls(("get_user_info", "{}")), [STALL]]
    replier, _ = await answer(sb, "slow")
    assert apology(replier) == ModelTimeout.user_message
    assert len(model.requests) == 2


# ----- apologies that say what happened -----


async def test_a_model_that_cannot_be_reached_is_named(
    sb: Switchboard, model: ScriptedChatModel
) -> None:
    model.steps = [ModelError("model x is unreachable")]
    replier, _ = await answer(sb, "hi")
    assert apology(replier) == ModelError.user_message
    assert "reach the language model" in apology(replier)


async def test_a_model_timing_out_is_named(sb: Switchboard, model: ScriptedChatModel) -> None:
    model.steps = [ModelTimeout("model x timed out")]
    replier, _ = await answer(sb, "hi")
    assert apology(replier) == ModelTimeout.user_message


async def test_a_stream_that_breaks_after_part_of_the_answer_says_it_is_incomplete(
    sb: Switchboard, model: ScriptedChatModel
) -> None:
    model.steps = [[*says("Step one: open the ", "portal"), ModelError("mid-response")]]
    replier, outcome = await answer(sb, "how?")
    assert replier.text() == "Step one: open the portal"
    text = apology(replier)
    assert text == ModelInterrupted("", timed_out=False).user_message
    assert "the answer above is incomplete" in text and "reach" not in text
    assert await status_of(sb, outcome) == "failed"


async def test_storage_that_fails_is_named(
    sb: Switchboard, model: ScriptedChatModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def unavailable(*_: object, **__: object) -> None:
        raise StorageError("storing the answer failed")

    monkeypatch.setattr(sb.inbox, "finish_turn", unavailable)
    monkeypatch.setattr("core.inbox.STORE_PATIENCE", 0.3)
    model.steps = [says("An answer that cannot be saved.")]
    replier, _ = await answer(sb, "hi")
    assert apology(replier) == StorageError.user_message
    assert "database" in apology(replier)


async def test_an_answer_is_stored_once_the_database_is_back(
    sb: Switchboard, model: ScriptedChatModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A database restart while the answer is stored: tried again, not apologised for
    (the person has the whole answer on screen already)."""
    finish_turn, refused = sb.inbox.finish_turn, []

    async def restarting(end: TurnEnd) -> list[Turn]:
        if len(refused) < 2:
            refused.append(end)
            raise StorageError("the database is restarting")
        return await finish_turn(end)

    monkeypatch.setattr(sb.inbox, "finish_turn", restarting)
    model.steps = [says("Stored at the third try.")]
    replier, outcome = await answer(sb, "hi")

    assert len(refused) == 2
    assert replier.kinds()[-1] == "done" and "failed" not in replier.kinds()
    assert (await stored(sb))[-1] == ("assistant", "Stored at the third try.")
    assert await status_of(sb, outcome) == "done"
