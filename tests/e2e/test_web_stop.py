"""Stopping an answer from the REST API (the web page's Stop button calls the same
endpoint), while the fake OpenAI model is still writing it."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp.test_utils import TestClient

from core.replies import STOPPED_MARK
from tests.e2e.conftest import MakeSettings, events_until, serving
from tests.fakes.openai_server import FakeOpenAI, Reply

Client = TestClient[Any, Any]
KEYS = "alice:alice-key-0123456789,bob:bob-key-0123456789,root:root-key-0123456789"
ALICE = {"Authorization": "Bearer alice-key-0123456789"}
BOB = {"Authorization": "Bearer bob-key-0123456789"}
ROOT = {"Authorization": "Bearer root-key-0123456789"}


async def test_the_person_stops_the_answer_and_it_is_kept_marked_stopped(
    make_settings: MakeSettings, llm: FakeOpenAI
) -> None:
    gate = asyncio.Event()  # the model writes its first words, then waits
    llm.script(Reply("The first words of a long answer", chunk_size=10, gate=gate))
    async with serving(make_settings(api_keys=KEYS)) as client:
        stream = await client.post("/api/v1/chat/stream", headers=ALICE,
                                   json={"message": "tell me everything", "message_id": "q1"})
        seen = await events_until(stream, "delta")
        conversation = seen[0][1]["conversation_id"]
        stop = f"/api/v1/conversations/{conversation}/stop"

        # Someone else cannot stop it, nor learn that the conversation exists.
        refused = await client.post(stop, headers=BOB)
        assert refused.status == 404

        stopped = await client.post(stop, headers=ALICE)
        assert stopped.status == 200 and await stopped.json() == {"stopping": True}
        rest = await events_until(stream, "done")
        done = rest[-1][1]
        assert done["stopped"] is True
        assert done["reply"] == f"The first \n\n{STOPPED_MARK}"
        await llm.wait_for_abandoned(1)  # the model call was cancelled, not waited out
        gate.set()

        history = await (await client.get(f"/api/v1/conversations/{conversation}",
                                          headers=ALICE)).json()
        assert [(t["role"], t["content"]) for t in history["turns"]] == [
            ("user", "tell me everything"), ("assistant", f"The first \n\n{STOPPED_MARK}")]
        # Nothing left to stop, and the same message sent again is not answered again.
        again = await client.post(stop, headers=ALICE)
        assert await again.json() == {"stopping": False}
        retried = await client.post("/api/v1/chat", headers=ALICE,
                                    json={"message": "tell me everything", "message_id": "q1"})
        assert (await retried.json())["reply"] == f"The first \n\n{STOPPED_MARK}"
        assert len(llm.requests) == 1


async def test_an_admin_may_stop_anyones_answer(
    make_settings: MakeSettings, llm: FakeOpenAI
) -> None:
    gate = asyncio.Event()
    llm.script(Reply("Going on and on", chunk_size=5, gate=gate))
    async with serving(make_settings(api_keys=KEYS, admins="root")) as client:
        stream = await client.post("/api/v1/chat/stream", headers=ALICE,
                                   json={"message": "talk"})
        seen = await events_until(stream, "delta")
        conversation = seen[0][1]["conversation_id"]
        stopped = await client.post(f"/api/v1/conversations/{conversation}/stop", headers=ROOT)
        assert await stopped.json() == {"stopping": True}
        done = (await events_until(stream, "done"))[-1][1]
        assert done["stopped"] is True
        gate.set()


async def test_the_first_question_names_the_conversation_on_the_stream_and_in_the_list(
    make_settings: MakeSettings, llm: FakeOpenAI
) -> None:
    llm.script(Reply("Use the self-service portal."))
    async with serving(make_settings(api_keys=KEYS)) as client:
        stream = await client.post("/api/v1/chat/stream", headers=ALICE,
                                   json={"message": "How do I reset my password?"})
        events = await events_until(stream, "done")
        names = [name for name, _ in events]
        assert names.index("title") < names.index("done")
        assert dict(events)["title"] == {"title": "Title: How do I"}
        listed = await (await client.get("/api/v1/conversations", headers=ALICE)).json()
        assert [c["title"] for c in listed["conversations"]] == ["Title: How do I"]
        [asked] = llm.title_requests
        assert asked.json["messages"][-1]["content"] == "How do I reset my password?"
