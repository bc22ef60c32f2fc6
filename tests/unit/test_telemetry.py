"""What the answer path tells its `Telemetry` when answering goes wrong: through the real
composition root with a scripted model and the in-memory stores."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from bots.bootstrap import bootstrap
from bots.settings import load_settings
from core.errors import StorageError
from core.inbox import Acceptance, Duplicate
from core.messages import ConversationRef, InboundMessage, Sender
from core.replies import ReplyFailed
from tests.fakes.scripted import STALL, RecordingReplier, ScriptedChatModel, calls, says
from tests.fakes.stores import in_memory_stores
from tests.fakes.telemetry import RecordingTelemetry

ADA = Sender(id="test:t1:ada", name="Ada Lovelace")


def message(text: str, *, mid: str = "m1") -> InboundMessage:
    return InboundMessage(
        id=mid,
        conversation=ConversationRef(channel="test", tenant="t1", conversation="dm"),
        sender=ADA, text=text, sent_at=datetime.now(UTC), is_direct=True,
    )


class Unreachable:
    async def search(self, *_: object, **__: object) -> list[object]:
        raise StorageError("the Qdrant server is unavailable")


async def test_an_answer_past_its_deadline_is_an_apology_and_a_cancelled_model_call(
    tmp_path: Path,
) -> None:
    telemetry = RecordingTelemetry()
    model = ScriptedChatModel([[*says("Let me think"), STALL]])
    settings = load_settings(data_dir=tmp_path, answer_deadline=0.3)
    async with bootstrap(settings, model=model, stores=in_memory_stores(),
                         open_knowledge=False, telemetry=telemetry) as sb:
        assert sb.worker is not None
        replier = RecordingReplier()
        await sb.worker.answer_now(Acceptance(message=message("think hard")), replier)

    assert isinstance(replier.events[-1], ReplyFailed)
    assert telemetry.messages == [("test", "apologised", "model_interrupted")]
    assert telemetry.model_calls == [("scripted", "cancelled")]
    assert telemetry.first_tokens == ["test"]  # "Let me think" reached the person


async def test_failed_searches_tools_and_duplicates_are_told(tmp_path: Path) -> None:
    telemetry = RecordingTelemetry()
    model = ScriptedChatModel([calls(("no_such_tool", "{}"), ("get_user_info", "{}")),
                               says("Here you are.")])
    settings = load_settings(data_dir=tmp_path)
    async with bootstrap(settings, model=model, stores=in_memory_stores(),
                         retriever=Unreachable(), open_knowledge=False,
                         telemetry=telemetry) as sb:
        assert sb.worker is not None
        first = Acceptance(message=message("who am I?"))
        await sb.worker.answer_now(first, RecordingReplier())
        again = await sb.worker.answer_now(first, RecordingReplier())

    assert isinstance(again, Duplicate)
    assert telemetry.received_on == ["test", "test"]
    assert telemetry.messages == [("test", "answered", ""), ("test", "duplicate", "done")]
    assert telemetry.searches == [False]  # the context's search, which failed
    assert sorted(telemetry.tools) == [("get_user_info", True), ("unknown", False)]
    assert [outcome for _, outcome in telemetry.model_calls] == ["ok", "ok"]
    assert telemetry.first_signs == ["test"]
