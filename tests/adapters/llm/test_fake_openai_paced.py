"""`Paced`: the fake model that thinks, then types, as the openai SDK sees it."""

from __future__ import annotations

import asyncio
import time

from openai import AsyncOpenAI

from tests.fakes.openai_server import FakeOpenAI, Paced, Reply


def client(fake: FakeOpenAI) -> AsyncOpenAI:
    return AsyncOpenAI(base_url=fake.base_url, api_key="sk-test", max_retries=0)


async def test_paced_stream_is_role_then_one_chunk_per_token_then_finish_then_usage() -> None:
    async with FakeOpenAI(default=Paced(first_token=0.2, tokens=10, rate=100)) as fake:
        started = time.monotonic()
        stream = await client(fake).chat.completions.create(
            model="fake-model", stream=True, stream_options={"include_usage": True},
            messages=[{"role": "user", "content": "how are you"}],
        )
        events: list[tuple[str, str | None, float]] = []
        async for chunk in stream:
            at = time.monotonic() - started
            if not chunk.choices:
                events.append(("usage", str(chunk.usage.completion_tokens if chunk.usage else None),
                               at))
            elif chunk.choices[0].finish_reason is not None:
                events.append(("finish", chunk.choices[0].finish_reason, at))
            elif chunk.choices[0].delta.role == "assistant":
                events.append(("role", chunk.choices[0].delta.content, at))
            else:
                events.append(("content", chunk.choices[0].delta.content, at))
        elapsed = time.monotonic() - started

    kinds = [kind for kind, _, _ in events]
    assert kinds == ["role"] + ["content"] * 10 + ["finish", "usage"]
    assert events[0][1] == ""
    contents = [value or "" for kind, value, _ in events if kind == "content"]
    assert contents[:3] == ["echo:", " how", " are"]
    assert "".join(contents).startswith("echo: how are you ")
    assert len("".join(contents).split()) == 10
    assert events[-2][1] == "stop" and events[-1][1] == "10"
    times = [at for kind, _, at in events if kind == "content"]
    assert times == sorted(times)
    assert times[0] >= 0.19  # the first token waits; nothing can come before its deadline
    assert times[-1] - times[0] >= 0.08  # nine gaps of 10 ms
    assert elapsed < 10  # a generous sanity bound, not a timing test


async def test_scripted_steps_come_before_the_default_and_text_can_be_given() -> None:
    async with FakeOpenAI(default=Paced(first_token=0, tokens=3, rate=1000)) as fake:
        fake.script(Reply("scripted"), Paced(first_token=0, tokens=2, rate=1000, text="a b c d"))
        llm = client(fake)
        texts = []
        for _ in range(3):
            stream = await llm.chat.completions.create(
                model="fake-model", stream=True, messages=[{"role": "user", "content": "q"}])
            pieces = [c.choices[0].delta.content async for c in stream
                      if c.choices and c.choices[0].delta.content]
            texts.append(pieces)

    assert "".join(texts[0]) == "scripted"
    assert texts[1] == ["a", " b c d"]  # longer than `tokens`: the rest in the last token
    assert texts[2] == ["echo:", " q", " lorem"]  # the default, padded to 3 tokens


async def test_paced_without_streaming_answers_all_at_once() -> None:
    async with FakeOpenAI(default=Paced(first_token=0.05, tokens=4, rate=100)) as fake:
        completion = await client(fake).chat.completions.create(
            model="fake-model", messages=[{"role": "user", "content": "hi"}])

    assert completion.choices[0].message.content == "echo: hi lorem ipsum"
    assert completion.choices[0].finish_reason == "stop"


async def test_closing_the_fake_ends_a_paced_answer_still_typing() -> None:
    fake = FakeOpenAI(default=Paced(first_token=0, tokens=1000, rate=10))
    await fake.__aenter__()
    received = asyncio.Event()

    async def read() -> None:
        stream = await client(fake).chat.completions.create(
            model="fake-model", stream=True, messages=[{"role": "user", "content": "q"}])
        async for _ in stream:
            received.set()

    reader = asyncio.create_task(read())
    await asyncio.wait_for(received.wait(), 5)
    started = time.monotonic()
    await fake.__aexit__(None, None, None)
    assert time.monotonic() - started < 5  # not 100 s of typing
    reader.cancel()
    await asyncio.gather(reader, return_exceptions=True)
