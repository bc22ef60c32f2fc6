"""The fake speaks the OpenAI wire format, so other suites can rely on it."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp

from tests.fakes.openai_server import FakeOpenAI, Hang, Reply


async def sse_events(fake: FakeOpenAI, body: dict[str, Any]) -> list[str]:
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{fake.base_url}/chat/completions", json=body) as response:
            assert response.status == 200
            assert response.headers["Content-Type"].startswith("text/event-stream")
            raw = await response.text()
    lines = [line for line in raw.split("\n") if line]
    assert all(line.startswith("data: ") for line in lines)
    return [line.removeprefix("data: ") for line in lines]


async def test_stream_is_chunk_objects_then_usage_then_done() -> None:
    async with FakeOpenAI() as fake:
        fake.script(Reply("hello world", chunk_size=4))
        events = await sse_events(fake, {
            "model": "m", "stream": True, "stream_options": {"include_usage": True},
            "messages": [{"role": "user", "content": "hi"}],
        })

    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}
    assert len({c["id"] for c in chunks}) == 1
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text == "hello world"
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 2


async def test_stream_has_no_usage_chunk_unless_asked() -> None:
    async with FakeOpenAI() as fake:
        events = await sse_events(fake, {
            "model": "m", "stream": True, "messages": [{"role": "user", "content": "hi"}],
        })

    chunks = [json.loads(e) for e in events[:-1]]
    assert all(c["choices"] and "usage" not in c for c in chunks)


async def test_unscripted_non_streaming_request_echoes_the_last_user_message() -> None:
    async with FakeOpenAI() as fake, aiohttp.ClientSession() as http:
        body = {"model": "m", "messages": [
            {"role": "user", "content": "first"}, {"role": "assistant", "content": "x"},
            {"role": "user", "content": "second"},
        ]}
        async with http.post(f"{fake.base_url}/chat/completions", json=body) as response:
            completion = await response.json()

    assert completion["object"] == "chat.completion"
    assert completion["choices"][0]["message"]["content"] == "echo: second"
    assert completion["choices"][0]["finish_reason"] == "stop"


async def test_models_endpoint_lists_the_fake_model_and_is_recorded() -> None:
    async with FakeOpenAI(model="tiny") as fake, aiohttp.ClientSession() as http:
        async with http.get(f"{fake.base_url}/models") as response:
            listing = await response.json()

    assert [m["id"] for m in listing["data"]] == ["tiny"]
    assert fake.requests[0].method == "GET" and fake.requests[0].path == "/v1/models"


async def test_wait_for_requests_wakes_when_requests_arrive() -> None:
    async with FakeOpenAI() as fake, aiohttp.ClientSession() as http:
        waiting = asyncio.create_task(fake.wait_for_requests(2))
        for _ in range(2):
            async with http.get(f"{fake.base_url}/models"):
                pass
        recorded = await waiting

    assert len(recorded) == 2


async def test_closing_answers_a_hanging_request_at_once() -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    async with aiohttp.ClientSession() as http:
        async with FakeOpenAI() as fake:
            fake.script(Hang(60))
            request = asyncio.create_task(http.post(f"{fake.base_url}/chat/completions", json=body))
            await fake.wait_for_requests(1)
        # Teardown did not wait out the hang (nor cancel the handler): the echo came back.
        async with await asyncio.wait_for(request, timeout=5) as response:
            completion = await response.json()

    assert completion["choices"][0]["message"]["content"] == "echo: hi"
