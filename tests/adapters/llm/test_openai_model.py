"""The real openai SDK against a real HTTP fake: what we send, what we make of the stream."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from collections.abc import AsyncIterator, Callable

import pytest

from adapters.llm.openai_model import OpenAIChatModel, create_chat_model
from core.errors import ModelError, ModelTimeout
from core.model import (
    ChatMessage,
    ChatRequest,
    ModelEvent,
    ModelText,
    ModelToolCalls,
    ModelUsage,
    ToolCall,
    ToolSpec,
)
from tests.fakes.openai_server import CallTools, Fail, FakeOpenAI, Hang, Malformed, Reply

ModelFactory = Callable[..., OpenAIChatModel]
QUESTION = ChatRequest(messages=(ChatMessage(role="user", content="What is the VPN address?"),))


@pytest.fixture
async def fake() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI() as server:
        yield server


@pytest.fixture
async def model_for() -> AsyncIterator[ModelFactory]:
    models: list[OpenAIChatModel] = []

    def build(
        base_url: str, *, api_key: str | None = "sk-test", timeout: float = 5.0,
        max_retries: int = 0, requests_per_minute: int | None = None,
    ) -> OpenAIChatModel:
        model = create_chat_model(
            model="gpt-test", api_key=api_key, base_url=base_url,
            timeout=timeout, max_retries=max_retries, requests_per_minute=requests_per_minute,
        )
        models.append(model)
        return model

    yield build
    for model in models:
        await model.aclose()


def closed_port_url() -> str:
    with socket.socket() as probe:  # nothing listens on the port once it is closed
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}/v1"


async def collect(model: OpenAIChatModel, request: ChatRequest = QUESTION) -> list[ModelEvent]:
    return [event async for event in model.stream(request)]


async def test_name_is_the_configured_model(fake: FakeOpenAI, model_for: ModelFactory) -> None:
    assert model_for(fake.base_url).name == "gpt-test"


async def test_text_streams_as_several_deltas_in_order(
    fake: FakeOpenAI, model_for: ModelFactory
) -> None:
    fake.script(Reply("The VPN is vpn.example.com.", chunk_size=5))

    events = await collect(model_for(fake.base_url))

    texts = [e.text for e in events if isinstance(e, ModelText)]
    assert texts == ["The V", "PN is", " vpn.", "examp", "le.co", "m."]
    assert not any(isinstance(e, ModelToolCalls) for e in events)


async def test_text_is_yielded_as_it_arrives_not_buffered(
    fake: FakeOpenAI, model_for: ModelFactory
) -> None:
    gate = asyncio.Event()
    fake.script(Reply("first, then the rest", chunk_size=6, gate=gate))
    stream = model_for(fake.base_url).stream(QUESTION)

    first = await asyncio.wait_for(anext(stream), timeout=5)  # the server is still paused
    gate.set()
    rest = [event async for event in stream]

    assert first == ModelText(text="first,")
    assert "".join(e.text for e in rest if isinstance(e, ModelText)) == " then the rest"


async def test_fragmented_interleaved_tool_calls_are_assembled(
    fake: FakeOpenAI, model_for: ModelFactory
) -> None:
    lookup = {"user_id": "U123", "fields": ["title", "time zone"]}
    fake.script(CallTools(calls=[("get_user_info", lookup), ("search", {"q": "vpn"})],
                          text="Let me check.", fragment=3))

    events = await collect(model_for(fake.base_url))

    assert [e.text for e in events if isinstance(e, ModelText)] == ["Let ", "me c", "heck", "."]
    [calls] = [e for e in events if isinstance(e, ModelToolCalls)]
    assert calls.calls == (
        ToolCall(id="call_fake0", name="get_user_info", arguments=json.dumps(lookup)),
        ToolCall(id="call_fake1", name="search", arguments=json.dumps({"q": "vpn"})),
    )
    assert isinstance(events[-1], ModelUsage)  # tool calls come after the text, usage last


async def test_tool_calls_without_ids_get_generated_ids(
    fake: FakeOpenAI, model_for: ModelFactory
) -> None:
    fake.script(CallTools(calls=[("a", {}), ("b", {"x": 1})], with_ids=False))

    [calls] = [e for e in await collect(model_for(fake.base_url)) if isinstance(e, ModelToolCalls)]

    ids = [c.id for c in calls.calls]
    assert all(i.startswith("call_") and len(i) > len("call_") for i in ids)
    assert len(set(ids)) == 2
    assert [c.arguments for c in calls.calls] == ["{}", '{"x": 1}']


async def test_usage_is_reported_once_at_the_end(fake: FakeOpenAI, model_for: ModelFactory) -> None:
    fake.script(Reply("two words"))

    events = await collect(model_for(fake.base_url))

    usages = [e for e in events if isinstance(e, ModelUsage)]
    assert len(usages) == 1 and events[-1] is usages[0]
    assert usages[0].completion_tokens == 2 and usages[0].prompt_tokens > 0


async def test_request_maps_messages_tools_and_tool_call_round_trip(
    fake: FakeOpenAI, model_for: ModelFactory
) -> None:
    call = ToolCall(id="call_1", name="get_user_info", arguments='{"user_id": "U1"}')
    schema = {"type": "object", "properties": {"user_id": {"type": "string"}}}
    request = ChatRequest(
        messages=(
            ChatMessage(role="system", content="Be brief."),
            ChatMessage(role="user", content="Who is U1?"),
            ChatMessage(role="assistant", content="", tool_calls=(call,)),
            ChatMessage(role="tool", content='{"name": "Ada"}', tool_call_id="call_1"),
            ChatMessage(role="assistant", content="U1 is Ada."),
            ChatMessage(role="user", content="Thanks"),
        ),
        tools=(ToolSpec(name="get_user_info", description="Look a person up.", parameters=schema),),
    )

    await collect(model_for(fake.base_url), request)

    [sent] = fake.requests
    assert sent.path == "/v1/chat/completions"
    assert sent.json["model"] == "gpt-test"
    assert sent.json["stream"] is True
    assert sent.json["stream_options"] == {"include_usage": True}
    assert sent.json["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Who is U1?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function",
             "function": {"name": "get_user_info", "arguments": '{"user_id": "U1"}'}},
        ]},
        {"role": "tool", "tool_call_id": "call_1", "content": '{"name": "Ada"}'},
        {"role": "assistant", "content": "U1 is Ada."},
        {"role": "user", "content": "Thanks"},
    ]
    assert sent.json["tools"] == [
        {"type": "function", "function": {
            "name": "get_user_info", "description": "Look a person up.", "parameters": schema}},
    ]


async def test_tools_are_omitted_when_there_are_none(
    fake: FakeOpenAI, model_for: ModelFactory
) -> None:
    await collect(model_for(fake.base_url))

    assert "tools" not in fake.requests[0].json


async def test_authorization_header_carries_the_api_key(
    fake: FakeOpenAI, model_for: ModelFactory
) -> None:
    await collect(model_for(fake.base_url, api_key="sk-live-123"))

    assert fake.requests[0].headers["Authorization"] == "Bearer sk-live-123"


async def test_local_servers_need_no_api_key(fake: FakeOpenAI, model_for: ModelFactory) -> None:
    events = await collect(model_for(fake.base_url, api_key=None))

    assert "".join(e.text for e in events if isinstance(e, ModelText)) == (
        "echo: What is the VPN address?"
    )
    assert fake.requests[0].headers["Authorization"] == "Bearer not-needed"


async def test_server_errors_are_retried_by_the_sdk_then_raise_model_error(
    fake: FakeOpenAI, model_for: ModelFactory
) -> None:
    fast = {"retry-after-ms": "10"}  # keeps the SDK's back-off short
    fake.script(*[Fail(status=500, headers=fast)] * 3, Reply("never reached"))

    with pytest.raises(ModelError) as raised:
        await collect(model_for(fake.base_url, max_retries=2))

    assert len(fake.requests) == 3
    assert not isinstance(raised.value, ModelTimeout)


async def test_rate_limit_with_retry_after_zero_then_succeeds(
    fake: FakeOpenAI, model_for: ModelFactory
) -> None:
    fake.script(Fail(status=429, headers={"retry-after": "0"}), Reply("ok now"))

    events = await collect(model_for(fake.base_url, max_retries=2))

    assert "".join(e.text for e in events if isinstance(e, ModelText)) == "ok now"
    assert len(fake.requests) == 2


async def test_client_errors_are_not_retried(fake: FakeOpenAI, model_for: ModelFactory) -> None:
    fake.script(Fail(status=400))

    with pytest.raises(ModelError):
        await collect(model_for(fake.base_url, max_retries=2))

    assert len(fake.requests) == 1


async def test_errors_and_logs_carry_no_secrets_or_prompts(
    fake: FakeOpenAI, model_for: ModelFactory, caplog: pytest.LogCaptureFixture
) -> None:
    body = {"error": {"message": "Incorrect API key provided: sk-live-secret",
                      "type": "invalid_request_error", "param": None, "code": "invalid_api_key"}}
    fake.script(Fail(status=401, body=body, headers={"x-request-id": "req_42"}))
    caplog.set_level(logging.DEBUG, logger="adapters")

    with pytest.raises(ModelError) as raised:
        await collect(model_for(fake.base_url, api_key="sk-live-secret"))

    assert "sk-live-secret" not in str(raised.value)
    assert "401" in str(raised.value)
    assert "req_42" in caplog.text and "401" in caplog.text
    assert "sk-live-secret" not in caplog.text and "VPN" not in caplog.text


async def test_hanging_server_beyond_the_timeout_raises_model_timeout(
    fake: FakeOpenAI, model_for: ModelFactory
) -> None:
    fake.script(Hang(30))

    with pytest.raises(ModelTimeout):
        await collect(model_for(fake.base_url, timeout=0.3, max_retries=0))


async def test_connection_refused_raises_model_error(model_for: ModelFactory) -> None:
    with pytest.raises(ModelError) as raised:
        await collect(model_for(closed_port_url(), max_retries=0))

    assert not isinstance(raised.value, ModelTimeout)


async def test_malformed_stream_raises_model_error(
    fake: FakeOpenAI, model_for: ModelFactory
) -> None:
    fake.script(Malformed())

    with pytest.raises(ModelError):
        await collect(model_for(fake.base_url))


async def test_chunks_of_the_wrong_shape_raise_model_error(
    fake: FakeOpenAI, model_for: ModelFactory
) -> None:
    fake.script(Malformed('{"id": "x", "choices": "not a list"}'))

    with pytest.raises(ModelError):
        await collect(model_for(fake.base_url))


async def test_error_event_mid_stream_raises_model_error(
    fake: FakeOpenAI, model_for: ModelFactory
) -> None:
    fake.script(Malformed('{"error": {"message": "overloaded", "type": "server_error"}}'))

    with pytest.raises(ModelError):
        await collect(model_for(fake.base_url))


async def test_stream_stalling_mid_answer_raises_model_timeout(
    fake: FakeOpenAI, model_for: ModelFactory
) -> None:
    gate = asyncio.Event()  # never opened before the client gives up
    fake.script(Reply("first, then silence", gate=gate))

    try:
        with pytest.raises(ModelTimeout):
            await collect(model_for(fake.base_url, timeout=0.3, max_retries=0))
    finally:
        gate.set()


async def test_abandoning_a_stream_closes_it_and_the_model_stays_usable(
    fake: FakeOpenAI, model_for: ModelFactory
) -> None:
    gate = asyncio.Event()
    fake.script(Reply("a long answer nobody waits for", gate=gate), Reply("next"))
    model = model_for(fake.base_url)
    stream = model.stream(QUESTION)

    await anext(stream)
    await stream.aclose()
    gate.set()

    texts = [e.text for e in await collect(model) if isinstance(e, ModelText)]
    assert texts == ["next"]


async def test_ping_lists_the_models(fake: FakeOpenAI, model_for: ModelFactory) -> None:
    await model_for(fake.base_url).ping()

    assert fake.requests[0].method == "GET" and fake.requests[0].path == "/v1/models"


async def test_ping_of_an_unreachable_server_raises_model_error(model_for: ModelFactory) -> None:
    with pytest.raises(ModelError):
        await model_for(closed_port_url()).ping()


async def test_requests_wait_for_the_models_rate_limit(
    fake: FakeOpenAI, model_for: ModelFactory
) -> None:
    model = model_for(fake.base_url, requests_per_minute=1)
    await collect(model)  # the minute's one request
    second = asyncio.create_task(collect(model))
    await asyncio.sleep(0.2)
    try:
        assert len(fake.requests) == 1 and not second.done()  # held back, not sent
    finally:
        second.cancel()
