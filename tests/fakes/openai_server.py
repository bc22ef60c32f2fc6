"""A real HTTP server speaking the OpenAI chat completions wire format, scripted by tests.

    async with FakeOpenAI() as fake:
        fake.script(Reply("Hello there"), CallTools(calls=[("get_user_info", {"id": "U1"})]))
        client = AsyncOpenAI(api_key="k", base_url=fake.base_url)

With nothing scripted it answers "echo: <last user message>", so it doubles as an instant model.
A request for a conversation's title (`core.titles.TITLE_PROMPT`) is answered beside the
script, never from it, with "Title: <the message's first three words>", and recorded in
`title_requests`, not `requests`: tests script answers as if titles were not asked for.
`FakeOpenAI(default=step)` answers with that step instead when nothing is scripted, e.g.
`default=Paced(first_token=0.5, tokens=100, rate=50)`: a model that thinks, then types.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import math
import time
import zlib
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from multidict import CIMultiDict

from core.titles import TITLE_PROMPT


@dataclass(frozen=True)
class Reply:
    """`text` streamed `chunk_size` characters at a time. With a `gate`, the stream pauses
    after the first piece until the test sets it (set it before the fake closes)."""

    text: str
    chunk_size: int = 4
    gate: asyncio.Event | None = None  # a client that leaves meanwhile counts in `abandoned`


@dataclass(frozen=True)
class CallTools:
    """Optional text, then the calls' deltas: arguments in `fragment`-character pieces,
    parallel calls interleaved by index."""

    calls: list[tuple[str, dict[str, Any]]]
    text: str = ""
    chunk_size: int = 4
    fragment: int = 5
    with_ids: bool = True  # some OpenAI-compatible servers send no call ids


@dataclass(frozen=True)
class Fail:
    status: int = 500
    body: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Hang:
    """Answer only after `seconds` (or never, until the fake closes); then `then` or an echo."""

    seconds: float
    then: Reply | CallTools | None = None


@dataclass(frozen=True)
class Paced:
    """A model that thinks, then types: the role chunk at once, the first content chunk
    `first_token` seconds after the request, then one chunk per token, `rate` tokens a
    second (token k at first_token + k / rate, on absolute deadlines, so pacing does not
    drift), then the finish (and usage, when asked). The answer is `text` (by default
    "echo: <last user message>") as words, padded with filler words to `tokens` tokens or,
    if longer, its remaining words in the last one: always `tokens` content chunks.
    Without streaming, the whole answer comes when the last token would have."""

    first_token: float
    tokens: int
    rate: float
    text: str | None = None

    def __post_init__(self) -> None:
        if self.tokens < 1 or self.rate <= 0 or self.first_token < 0:
            raise ValueError("Paced needs tokens >= 1, rate > 0 and first_token >= 0")


@dataclass(frozen=True)
class Malformed:
    """A 200 stream whose only event is `event`: by default not even JSON."""

    event: str = "{not json"


@dataclass(frozen=True)
class Cut:
    """`text` starts streaming, then the connection drops after `pieces` content chunks
    (no finish, no [DONE]): a server that crashed or a proxy that gave up mid-answer."""

    text: str
    pieces: int = 2
    chunk_size: int = 4


Step = Reply | CallTools | Fail | Hang | Paced | Malformed | Cut


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    headers: Mapping[str, str]
    json: Any


class FakeOpenAI:
    def __init__(self, *, model: str = "fake-model", default: Step | None = None) -> None:
        self.model = model
        self.default = default  # the answer when nothing is scripted (None: an instant echo)
        self.requests: list[RecordedRequest] = []
        self.title_requests: list[RecordedRequest] = []
        # Streamed answers whose client went away before the end (a cancelled call).
        self.abandoned = 0
        self._steps: deque[Step] = deque()
        self._seen = asyncio.Condition()
        self._closing = asyncio.Event()
        self._ids = itertools.count(1)
        self._paced: set[asyncio.Task[Any]] = set()  # handlers sleeping between paced tokens
        self._runner: web.AppRunner | None = None
        self.base_url = ""
        # /v1/embeddings: texts → vectors; tests may set a semantic fake (tests/fakes/embeddings).
        self.embed: Callable[[list[str]], list[list[float]]] = hashed_embeddings

    def script(self, *steps: Step) -> None:
        self._steps.extend(steps)

    async def wait_for_requests(self, n: int, timeout: float = 5.0) -> list[RecordedRequest]:
        async with self._seen:
            await asyncio.wait_for(self._seen.wait_for(lambda: len(self.requests) >= n), timeout)
        return self.requests[:n]

    async def wait_for_abandoned(self, n: int = 1, timeout: float = 5.0) -> None:
        """Until `n` streamed answers were abandoned by their client (it closed the
        connection mid-answer: the request was cancelled)."""
        async with self._seen:
            await asyncio.wait_for(self._seen.wait_for(lambda: self.abandoned >= n), timeout)

    async def __aenter__(self) -> FakeOpenAI:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_get("/v1/models", self._models)
        app.router.add_post("/v1/embeddings", self._embeddings)
        self._runner = web.AppRunner(app, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.base_url = f"http://127.0.0.1:{port}/v1"
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._closing.set()  # releases any Hang still waiting
        for task in list(self._paced):  # and ends paced answers still typing
            task.cancel()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _record(self, request: web.Request, *, body: Any = None) -> Any:
        if body is None and request.can_read_body:
            body = await request.json()
        async with self._seen:
            self.requests.append(
                RecordedRequest(request.method, request.path, CIMultiDict(request.headers), body)
            )
            self._seen.notify_all()
        return body

    async def _models(self, request: web.Request) -> web.Response:
        await self._record(request)
        model = {"id": self.model, "object": "model", "created": 0, "owned_by": "fake"}
        return web.json_response({"object": "list", "data": [model]})

    async def _embeddings(self, request: web.Request) -> web.Response:
        body = await self._record(request)
        texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
        vectors = self.embed([str(t) for t in texts])
        data = [{"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(vectors)]
        usage = {"prompt_tokens": 0, "total_tokens": 0}
        return web.json_response(
            {"object": "list", "data": data, "model": body["model"], "usage": usage}
        )

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json() if request.body_exists else None
        if _asks_for_title(body):
            self.title_requests.append(
                RecordedRequest(request.method, request.path, CIMultiDict(request.headers), body)
            )
            words = " ".join(_last_user_text(body["messages"]).split()[:3])
            title = Reply(f"Title: {words}")
            if body.get("stream"):
                return await self._sse(request, self._chunks(body, title))
            return web.json_response(self._completion(body, title))
        await self._record(request, body=body)
        step = self._steps.popleft() if self._steps else self.default
        if isinstance(step, Paced):
            return await self._paced_answer(request, body, step)
        if isinstance(step, Hang):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), step.seconds)
            step = step.then
        match step:
            case Fail(status=status, body=error, headers=headers):
                error = error or {"error": {"message": "fake failure", "type": "server_error",
                                            "param": None, "code": None}}
                return web.json_response(error, status=status, headers=headers)
            case Malformed(event=event):
                return await self._sse(request, [event, "[DONE]"])
            case Cut(pieces=pieces):
                events = self._chunks(body, Reply(step.text, chunk_size=step.chunk_size))
                return await self._sse(request, events[: 1 + pieces], cut=True)
            case Reply() | CallTools():
                answer = step
            case _:
                answer = Reply(f"echo: {_last_user_text(body['messages'])}")
        if body.get("stream"):
            gate = answer.gate if isinstance(answer, Reply) else None
            return await self._sse(request, self._chunks(body, answer), gate=gate)
        return web.json_response(self._completion(body, answer))

    async def _paced_answer(
        self, request: web.Request, body: Any, step: Paced
    ) -> web.StreamResponse:
        loop = asyncio.get_running_loop()
        start = loop.time()
        text = step.text if step.text is not None else \
            f"echo: {_last_user_text(body['messages'])}"
        tokens = paced_tokens(text, step.tokens)
        answer = Reply("".join(tokens))
        deadlines = [start + step.first_token + k / step.rate for k in range(len(tokens))]
        task = asyncio.current_task()
        assert task is not None
        self._paced.add(task)
        try:
            if not body.get("stream"):
                await asyncio.sleep(max(0.0, deadlines[-1] - loop.time()))
                return web.json_response(self._completion(body, answer))
            events = self._chunks(body, answer, pieces=tokens)
            # event 0 is the role chunk, events 1..tokens the content, then finish/usage/DONE
            at = [None, *deadlines]
            return await self._sse(request, events, at=at)
        finally:
            self._paced.discard(task)

    def _chunks(
        self, body: Any, answer: Reply | CallTools, *, pieces: list[str] | None = None
    ) -> list[str]:
        base = {"id": f"chatcmpl-{next(self._ids)}", "object": "chat.completion.chunk",
                "created": int(time.time()), "model": body["model"], "system_fingerprint": None}
        with_usage = bool((body.get("stream_options") or {}).get("include_usage"))

        def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> str:
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
            usage = {"usage": None} if with_usage else {}
            return json.dumps({**base, "choices": [choice], **usage})

        chunks = [chunk({"role": "assistant", "content": ""})]
        if pieces is None:
            pieces = list(_pieces(answer.text, answer.chunk_size))
        chunks += [chunk({"content": piece}) for piece in pieces]
        if isinstance(answer, CallTools):
            chunks += [chunk({"tool_calls": [delta]}) for delta in _tool_call_deltas(answer)]
        chunks.append(chunk({}, _finish_reason(answer)))
        if with_usage:
            chunks.append(json.dumps({**base, "choices": [], "usage": _usage(body, answer)}))
        return [*chunks, "[DONE]"]

    def _completion(self, body: Any, answer: Reply | CallTools) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": answer.text or None,
                                   "refusal": None}
        if isinstance(answer, CallTools):
            message["tool_calls"] = [
                {"id": f"call_fake{i}", "type": "function",
                 "function": {"name": name, "arguments": json.dumps(args)}}
                for i, (name, args) in enumerate(answer.calls)
            ]
        choice = {"index": 0, "message": message, "logprobs": None,
                  "finish_reason": _finish_reason(answer)}
        return {"id": f"chatcmpl-{next(self._ids)}", "object": "chat.completion",
                "created": int(time.time()), "model": body["model"], "choices": [choice],
                "usage": _usage(body, answer)}

    async def _sse(
        self, request: web.Request, events: list[str], *, gate: asyncio.Event | None = None,
        at: list[float | None] | None = None, cut: bool = False,
    ) -> web.StreamResponse:
        """`at`: for event n, the loop time (if any) before which it is not sent. `cut`:
        drop the connection after the events instead of ending the response."""
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        loop = asyncio.get_running_loop()
        for n, event in enumerate(events):
            # After the role chunk and the first text, the gate (unless the client left).
            if n == 2 and gate is not None and not await self._gate_or_gone(request, gate):
                return response
            if at is not None and n < len(at) and (deadline := at[n]) is not None:
                await asyncio.sleep(max(0.0, deadline - loop.time()))
            try:
                await response.write(f"data: {event}\n\n".encode())
            except ConnectionResetError:  # the client hung up: what a cancelled call does
                await self._left()
                return response
        if cut:
            assert request.transport is not None
            request.transport.abort()
            return response
        await response.write_eof()
        return response

    async def _left(self) -> None:
        """A client went away mid-answer (its call was cancelled)."""
        async with self._seen:
            self.abandoned += 1
            self._seen.notify_all()

    async def _gate_or_gone(self, request: web.Request, gate: asyncio.Event) -> bool:
        """Wait for the gate; False if the client left first (its stream was abandoned:
        counted in `abandoned`)."""
        while not gate.is_set():
            if request.transport is None or request.transport.is_closing():
                await self._left()
                return False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(gate.wait(), 0.02)
        return True


def _finish_reason(answer: Reply | CallTools) -> str:
    return "tool_calls" if isinstance(answer, CallTools) else "stop"


def _usage(body: Any, answer: Reply | CallTools) -> dict[str, int]:
    prompt = len(json.dumps(body["messages"])) // 4
    completion = len(answer.text.split()) + len(getattr(answer, "calls", ()))
    return {"prompt_tokens": prompt, "completion_tokens": completion,
            "total_tokens": prompt + completion}


def _pieces(text: str, size: int) -> Iterator[str]:
    return (text[i : i + size] for i in range(0, len(text), max(size, 1)))


FILLER = ("lorem", "ipsum", "dolor", "sit", "amet", "consectetur", "adipiscing", "elit")


def paced_tokens(text: str, count: int) -> list[str]:
    """`text` as `count` tokens: a word each (with its leading space), padded with filler
    words, or its remaining words all in the last token."""
    words = text.split(" ")
    tokens = [words[0], *(" " + word for word in words[1:])]
    tokens += [f" {FILLER[k % len(FILLER)]}" for k in range(max(0, count - len(tokens)))]
    return [*tokens[: count - 1], "".join(tokens[count - 1 :])]


def _tool_call_deltas(step: CallTools) -> Iterator[dict[str, Any]]:
    """Each call's first delta carries id and name; its arguments follow in fragments.
    Calls are interleaved round-robin by index, which streaming clients must tolerate."""
    per_call = []
    for index, (name, args) in enumerate(step.calls):
        first: dict[str, Any] = {"index": index, "type": "function",
                                 "function": {"name": name, "arguments": ""}}
        if step.with_ids:
            first["id"] = f"call_fake{index}"
        rest = [{"index": index, "function": {"arguments": piece}}
                for piece in _pieces(json.dumps(args), step.fragment)]
        per_call.append([first, *rest])
    for row in itertools.zip_longest(*per_call):
        yield from (delta for delta in row if delta is not None)


def _asks_for_title(body: Any) -> bool:
    messages = body.get("messages") if isinstance(body, dict) else None
    return bool(messages) and messages[0].get("content") == TITLE_PROMPT


def _last_user_text(messages: list[dict[str, Any]]) -> str:
    content = next((m.get("content") for m in reversed(messages) if m.get("role") == "user"), "")
    if isinstance(content, list):  # content parts
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return content or ""


def hashed_embeddings(texts: list[str], size: int = 64) -> list[list[float]]:
    """A deterministic stand-in: each word adds to a dimension chosen by its hash. It has
    no notion of meaning; tests that need one set `FakeOpenAI.embed`."""
    vectors = []
    for text in texts:
        vector = [0.0] * size
        for word in text.lower().split():
            vector[zlib.crc32(word.encode()) % size] += 1.0
        norm = math.sqrt(sum(x * x for x in vector)) or 1.0
        vectors.append([x / norm for x in vector])
    return vectors
