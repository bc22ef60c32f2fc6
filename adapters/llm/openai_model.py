"""`ChatModel` over the OpenAI chat completions API, streamed.

Any OpenAI-compatible server works with just a base URL: OpenAI, Azure OpenAI's v1
endpoint, Ollama, vLLM, llama.cpp server. Retries on 408/409/429/5xx are the SDK's.

The request goes through the SDK's own `post` (its auth, retries, errors and SSE
decoding) with a body we build and chunks read as JSON: `chat.completions.create` would
re-walk the body against its TypedDicts and build a pydantic model per chunk, which
measured at more than half of the SDK's CPU per answer (`benchmarks/README.md`).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, assert_never

import openai
from aiolimiter import AsyncLimiter
from openai import AsyncOpenAI, AsyncStream, DefaultAioHttpClient

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

log = logging.getLogger(__name__)


_AUTH: dict[str, Any] = {"security": {"bearer_auth": True}}


class OpenAIChatModel:
    def __init__(
        self, client: AsyncOpenAI, model: str, *, requests_per_minute: int | None = None
    ) -> None:
        self._client = client
        self._model = model
        # Hundreds of turns wait on the model at once; the provider's own limit (if
        # known) spaces their requests instead of earning 429s.
        self._limiter = (
            AsyncLimiter(requests_per_minute, 60) if requests_per_minute else None
        )
        self._tools: tuple[tuple[ToolSpec, ...], list[dict[str, Any]]] = ((), [])

    @property
    def name(self) -> str:
        return self._model

    async def aclose(self) -> None:
        await self._client.close()

    async def ping(self) -> None:
        """Check the server answers and accepts the key (lists its models)."""
        with self._errors_translated():
            await self._client.models.list()

    async def stream(self, request: ChatRequest) -> AsyncIterator[ModelEvent]:
        body: dict[str, Any] = {
            "model": self._model,
            "messages": [_message(m) for m in request.messages],
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if request.tools:
            body["tools"] = self._tool_specs(request.tools)
        calls = _ToolCallAssembler()
        usage: ModelUsage | None = None
        if self._limiter is not None:
            await self._limiter.acquire()
        with self._errors_translated():
            chunks = await self._client.post(
                "/chat/completions", body=body, options=_AUTH, cast_to=object,
                stream=True, stream_cls=AsyncStream[object],
            )
            async with chunks:
                async for raw in chunks:
                    chunk: dict[str, Any] = raw  # type: ignore[assignment]  # JSON object
                    if chunk.get("usage"):
                        usage = ModelUsage(
                            prompt_tokens=chunk["usage"].get("prompt_tokens") or 0,
                            completion_tokens=chunk["usage"].get("completion_tokens") or 0,
                        )
                    for choice in chunk.get("choices") or ():
                        delta = choice.get("delta") or {}
                        if delta.get("content"):
                            yield ModelText(text=delta["content"])
                        for call in delta.get("tool_calls") or ():
                            calls.add(call)
        if calls:
            yield ModelToolCalls(calls=calls.assembled())
        if usage is not None:
            yield usage

    def _tool_specs(self, specs: tuple[ToolSpec, ...]) -> list[dict[str, Any]]:
        """The tools in the API's shape; the registry hands the same tuple every turn."""
        if self._tools[0] is not specs:
            self._tools = (specs, [_tool(spec) for spec in specs])
        return self._tools[1]

    @contextmanager
    def _errors_translated(self) -> Iterator[None]:
        """SDK errors become `ModelError`s whose text holds no secret: servers echo parts
        of a rejected API key in their error messages, so those are not passed on."""
        try:
            yield
        except openai.APITimeoutError as e:
            if _refused(e):  # the aiohttp transport reports a refused connection as a timeout
                log.warning("model %s unreachable: connection refused", self._model)
                raise ModelError(f"model {self._model} is unreachable") from e
            log.warning("model %s timed out", self._model)
            raise ModelTimeout(f"model {self._model} timed out") from e
        except openai.APIStatusError as e:
            log.warning(
                "model %s answered HTTP %d (request id %s, code %s)",
                self._model, e.status_code, e.request_id, e.code,
            )
            raise ModelError(f"model {self._model} answered HTTP {e.status_code}") from e
        except openai.APIConnectionError as e:
            log.warning("model %s unreachable: %s", self._model, type(e.__cause__).__name__)
            raise ModelError(f"model {self._model} is unreachable") from e
        except openai.APIError as e:  # an error event in the middle of the stream
            log.warning("model %s failed mid-response (code %s)", self._model, e.code)
            raise ModelError(f"model {self._model} failed mid-response") from e
        except (ValueError, TypeError, AttributeError, KeyError) as e:
            # Not a chat completion stream: bad JSON, or wrong shapes (chunks are read as
            # JSON, so those surface as key, attribute and type errors here).
            log.warning("model %s sent a malformed stream: %s", self._model, type(e).__name__)
            raise ModelError(f"model {self._model} sent a malformed response") from e


def _refused(error: BaseException) -> bool:
    """Whether a connection was refused (or reset) somewhere under `error`, as opposed to
    a wait that ran out."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, OSError) and not isinstance(seen, TimeoutError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def create_chat_model(
    *, model: str, api_key: str | None, base_url: str | None, timeout: float, max_retries: int,
    requests_per_minute: int | None = None,
) -> OpenAIChatModel:
    # Local servers ignore the key, but the SDK refuses to start without one. The aiohttp
    # transport (the SDK's own, `openai[aiohttp]`): with many answers in flight, HTTPX's
    # pool checks every idle connection on each request (more than half the SDK's CPU
    # with 50 streams at once; half the CPU per request with aiohttp).
    client = AsyncOpenAI(
        api_key=api_key or "not-needed",
        base_url=base_url,
        timeout=timeout,
        max_retries=max_retries,
        http_client=DefaultAioHttpClient(),
    )
    return OpenAIChatModel(client, model, requests_per_minute=requests_per_minute)


def _message(message: ChatMessage) -> dict[str, Any]:
    match message.role:
        case "system" | "user":
            return {"role": message.role, "content": message.content}
        case "assistant" if message.tool_calls:
            return {
                "role": "assistant",
                "content": message.content or None,
                "tool_calls": [
                    {
                        "id": call.id,
                        "type": "function",
                        "function": {"name": call.name, "arguments": call.arguments},
                    }
                    for call in message.tool_calls
                ],
            }
        case "assistant":
            return {"role": "assistant", "content": message.content}
        case "tool":
            return {
                "role": "tool", "tool_call_id": message.tool_call_id, "content": message.content
            }
        case _:
            assert_never(message.role)


def _tool(spec: ToolSpec) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {
            "name": spec.name,
            "description": spec.description,
            "parameters": spec.parameters,
        },
    }


@dataclass
class _PendingCall:
    id: str | None = None
    name: str | None = None
    arguments: list[str] = field(default_factory=list)


class _ToolCallAssembler:
    """Tool calls arrive as deltas keyed by `index`: id and name first, then the arguments
    in pieces; parallel calls may interleave."""

    def __init__(self) -> None:
        self._calls: dict[int, _PendingCall] = {}

    def __bool__(self) -> bool:
        return bool(self._calls)

    def add(self, delta: dict[str, Any]) -> None:
        if isinstance(delta.get("index"), int):
            index = delta["index"]
        elif delta.get("id") or not self._calls:  # no index: a new id starts a new call
            index = len(self._calls)
        else:
            index = max(self._calls)
        call = self._calls.setdefault(index, _PendingCall())
        # Some servers repeat id and name in every delta: keep the first, never concatenate.
        call.id = call.id or delta.get("id")
        function = delta.get("function")
        if function is not None:
            call.name = call.name or function.get("name")
            if function.get("arguments"):
                call.arguments.append(function["arguments"])

    def assembled(self) -> tuple[ToolCall, ...]:
        calls = []
        for index in sorted(self._calls):
            pending = self._calls[index]
            if not pending.name:
                raise ModelError(f"the model sent tool call {index} without a name")
            calls.append(
                ToolCall(
                    # Ollama and some llama.cpp builds send no ids; tool results need one.
                    id=pending.id or f"call_{uuid.uuid4().hex[:24]}",
                    name=pending.name,
                    arguments="".join(pending.arguments) or "{}",
                )
            )
        return tuple(calls)
