"""`ChatModel` over the OpenAI chat completions API, streamed.

Any OpenAI-compatible server works with just a base URL: OpenAI, Azure OpenAI's v1
endpoint, Ollama, vLLM, llama.cpp server. Retries on 408/409/429/5xx are the SDK's.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, assert_never

import openai
from openai import AsyncOpenAI
from openai.types.chat.chat_completion_chunk import ChoiceDeltaToolCall

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


class OpenAIChatModel:
    def __init__(self, client: AsyncOpenAI, model: str) -> None:
        self._client = client
        self._model = model

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
        options: dict[str, Any] = {}
        if request.tools:
            options["tools"] = [_tool(spec) for spec in request.tools]
        calls = _ToolCallAssembler()
        usage: ModelUsage | None = None
        with self._errors_translated():
            chunks = await self._client.chat.completions.create(
                model=self._model,
                messages=[_message(m) for m in request.messages],
                stream=True,
                stream_options={"include_usage": True},
                **options,
            )
            async with chunks:
                async for chunk in chunks:
                    if chunk.usage is not None:
                        usage = ModelUsage(
                            prompt_tokens=chunk.usage.prompt_tokens or 0,
                            completion_tokens=chunk.usage.completion_tokens or 0,
                        )
                    for choice in chunk.choices:
                        if choice.delta.content:
                            yield ModelText(text=choice.delta.content)
                        for delta in choice.delta.tool_calls or ():
                            calls.add(delta)
        if calls:
            yield ModelToolCalls(calls=calls.assembled())
        if usage is not None:
            yield usage

    @contextmanager
    def _errors_translated(self) -> Iterator[None]:
        """SDK errors become `ModelError`s whose text holds no secret: servers echo parts
        of a rejected API key in their error messages, so those are not passed on."""
        try:
            yield
        except openai.APITimeoutError as e:
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
        except (ValueError, TypeError, AttributeError) as e:
            # Not a chat completion stream: bad JSON, or wrong shapes (the SDK does not
            # validate chunks, so those surface as attribute and type errors here).
            log.warning("model %s sent a malformed stream: %s", self._model, type(e).__name__)
            raise ModelError(f"model {self._model} sent a malformed response") from e


def create_chat_model(
    *, model: str, api_key: str | None, base_url: str | None, timeout: float, max_retries: int
) -> OpenAIChatModel:
    # Local servers ignore the key, but the SDK refuses to start without one.
    client = AsyncOpenAI(
        api_key=api_key or "not-needed",
        base_url=base_url,
        timeout=timeout,
        max_retries=max_retries,
    )
    return OpenAIChatModel(client, model)


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

    def add(self, delta: ChoiceDeltaToolCall) -> None:
        if isinstance(delta.index, int):
            index = delta.index
        elif delta.id or not self._calls:  # no index: a new id starts a new call
            index = len(self._calls)
        else:
            index = max(self._calls)
        call = self._calls.setdefault(index, _PendingCall())
        # Some servers repeat id and name in every delta: keep the first, never concatenate.
        call.id = call.id or delta.id
        if delta.function is not None:
            call.name = call.name or delta.function.name
            if delta.function.arguments:
                call.arguments.append(delta.function.arguments)

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
