"""Tools the model may call: schemas derived from type hints and docstrings, arguments
validated before the call, and every failure turned into a result the model can read.

A tool is an async function whose first parameter is a `ToolContext`; it acts as the
verified sender in that context, never as anyone named in the model's arguments.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, get_type_hints, overload

import docstring_parser
import pydantic_core
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from core.errors import ToolError
from core.knowledge import Audience, PassageBook
from core.messages import ConversationRef, Sender
from core.model import ToolCall, ToolSpec
from core.ports import ChannelHistory, ProfileStore, Retriever
from core.tickets.service import TicketService

log = logging.getLogger(__name__)

ToolFunction = Callable[..., Awaitable[Any]]


@dataclass(frozen=True, kw_only=True, slots=True)
class ToolServices:
    """The stores tools may use, injected by the composition root."""

    profiles: ProfileStore
    knowledge: Retriever | None = None
    tickets: TicketService | None = None
    channels: ChannelHistory | None = None  # chat channels' messages (Slack only)


@dataclass(frozen=True, kw_only=True, slots=True)
class ToolContext:
    """What a tool knows about the turn. `sender` is the verified author of the message;
    `audience` is who will see the answer (what knowledge may reach it); `sources` are the
    passages the answer may cite."""

    sender: Sender
    conversation: ConversationRef
    message_id: str
    services: ToolServices
    audience: Audience
    sources: PassageBook


@dataclass(frozen=True, kw_only=True, slots=True)
class Tool:
    name: str
    title: str
    description: str
    arguments: type[BaseModel]
    function: ToolFunction
    timeout: float
    # False for a tool that changes something (opens a ticket): a stopped answer lets it
    # finish rather than cut it off half-way.
    cancellable: bool = True

    @property
    def spec(self) -> ToolSpec:
        return ToolSpec(
            name=self.name,
            description=self.description,
            parameters=json_schema(self.arguments),
        )


@dataclass(frozen=True, kw_only=True, slots=True)
class ToolOutcome:
    call: ToolCall
    content: str
    ok: bool


@overload
def tool(function: ToolFunction, /) -> Tool: ...


@overload
def tool(
    *, name: str | None = None, title: str | None = None, timeout: float = 30.0,
    cancellable: bool = True,
) -> Callable[[ToolFunction], Tool]: ...


def tool(
    function: ToolFunction | None = None,
    /,
    *,
    name: str | None = None,
    title: str | None = None,
    timeout: float = 30.0,
    cancellable: bool = True,
) -> Tool | Callable[[ToolFunction], Tool]:
    """Make a `Tool` of an async function. Its docstring is the model-facing description
    (the `Args:` section describes each parameter); `title` is what the person sees while
    it runs ("Looking up your profile"). `cancellable=False`: when the answer is stopped,
    the call runs to its end first (it writes something)."""

    def make(fn: ToolFunction) -> Tool:
        if not inspect.iscoroutinefunction(fn):
            raise TypeError(f"tool {fn.__name__} must be an async function")
        doc = docstring_parser.parse(inspect.getdoc(fn) or "")
        description = "\n\n".join(
            part for part in (doc.short_description, doc.long_description) if part
        )
        if not description:
            raise TypeError(f"tool {fn.__name__} needs a docstring: it is what the model reads")
        return Tool(
            name=name or fn.__name__,
            title=title or f"Running {name or fn.__name__}",
            description=description,
            arguments=_arguments_model(fn, {p.arg_name: p.description for p in doc.params}),
            function=fn,
            timeout=timeout,
            cancellable=cancellable,
        )

    return make(function) if function is not None else make


async def _to_its_end(call: Awaitable[Any]) -> Any:
    """Await `call`; if the caller is cancelled meanwhile (the answer was stopped), the
    call still runs to its end before the cancellation goes on."""
    task = asyncio.ensure_future(call)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        with contextlib.suppress(Exception):
            await task
        raise


def _arguments_model(fn: ToolFunction, param_docs: dict[str, str | None]) -> type[BaseModel]:
    hints = get_type_hints(fn)
    params = list(inspect.signature(fn).parameters.values())
    if not params or hints.get(params[0].name) is not ToolContext:
        raise TypeError(f"tool {fn.__name__}: the first parameter must be a ToolContext")
    fields: dict[str, Any] = {}
    for param in params[1:]:
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise TypeError(f"tool {fn.__name__}: *args and **kwargs cannot be described")
        if param.name not in hints:
            raise TypeError(f"tool {fn.__name__}: parameter {param.name} needs a type hint")
        default = ... if param.default is param.empty else param.default
        fields[param.name] = (
            hints[param.name],
            Field(default, description=param_docs.get(param.name)),
        )
    config = ConfigDict(extra="forbid")
    model: type[BaseModel] = create_model(f"{fn.__name__}_arguments", __config__=config, **fields)
    return model


def json_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The model's JSON schema with `$ref`s inlined and titles dropped: several
    OpenAI-compatible servers (llama.cpp, older vLLM) do not resolve references."""
    schema = model.model_json_schema()
    defs = schema.pop("$defs", {})

    def resolve(node: Any, seen: frozenset[str]) -> Any:
        if isinstance(node, list):
            return [resolve(item, seen) for item in node]
        if not isinstance(node, dict):
            return node
        if "$ref" in node:
            name = node["$ref"].rsplit("/", 1)[-1]
            if name in seen:
                raise TypeError(f"recursive type {name} cannot be used in a tool schema")
            rest = {k: v for k, v in node.items() if k != "$ref"}
            return resolve({**defs[name], **rest}, seen | {name})
        out: dict[str, Any] = {}
        for key, value in node.items():
            if key == "title":
                continue
            if key == "properties":
                out[key] = {prop: resolve(sub, seen) for prop, sub in value.items()}
            else:
                out[key] = resolve(value, seen)
        return out

    resolved: dict[str, Any] = resolve(schema, frozenset())
    return resolved


class ToolRegistry:
    """The tools offered to the model, and their safe execution."""

    def __init__(self, tools: Iterable[Tool] = ()) -> None:
        self._tools: dict[str, Tool] = {}
        self._specs: tuple[ToolSpec, ...] = ()
        for t in tools:
            self.add(t)

    def add(self, t: Tool) -> None:
        if t.name in self._tools:
            raise ValueError(f"tool {t.name} is registered twice")
        self._tools[t.name] = t
        # Built once: a JSON schema costs more than the rest of a turn's bookkeeping.
        self._specs = (*self._specs, t.spec)

    def specs(self) -> tuple[ToolSpec, ...]:
        return self._specs

    def knows(self, name: str) -> bool:
        return name in self._tools

    def title(self, name: str) -> str:
        found = self._tools.get(name)
        return found.title if found else f"Running {name}"

    async def run_all(self, calls: Sequence[ToolCall], ctx: ToolContext) -> list[ToolOutcome]:
        """Run the calls of one model response concurrently, results in call order."""
        return list(await asyncio.gather(*(self.run(call, ctx) for call in calls)))

    async def run(self, call: ToolCall, ctx: ToolContext) -> ToolOutcome:
        """Run one call. Never raises: every failure becomes a result the model reads."""
        found = self._tools.get(call.name)
        if found is None:
            known = ", ".join(sorted(self._tools)) or "none"
            return ToolOutcome(
                call=call, ok=False, content=f"Unknown tool '{call.name}'. Available: {known}."
            )
        try:
            arguments = found.arguments.model_validate_json(call.arguments or "{}")
        except ValidationError as e:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or 'arguments'}: {err['msg']}"
                for err in e.errors()
            )
            return ToolOutcome(
                call=call, ok=False, content=f"Invalid arguments for {call.name}: {problems}."
            )
        kwargs = {name: getattr(arguments, name) for name in type(arguments).model_fields}
        try:
            async with asyncio.timeout(found.timeout):
                call_once = found.function(ctx, **kwargs)
                result = await (call_once if found.cancellable else _to_its_end(call_once))
        except ToolError as e:
            return ToolOutcome(call=call, ok=False, content=f"Error: {e.message}")
        except TimeoutError:
            log.warning("tool %s timed out (message %s)", call.name, ctx.message_id)
            return ToolOutcome(
                call=call,
                ok=False,
                content=f"{call.name} timed out after {found.timeout:g} s; it did not finish.",
            )
        except Exception:
            reference = uuid.uuid4().hex[:8]
            log.exception(
                "tool %s failed (message %s, reference %s)", call.name, ctx.message_id, reference
            )
            return ToolOutcome(
                call=call,
                ok=False,
                content=(
                    f"{call.name} failed with an internal error (reference {reference}). "
                    "Tell the person it did not work; do not call it again for this request."
                ),
            )
        return ToolOutcome(call=call, ok=True, content=_as_text(result))


def _as_text(result: Any) -> str:
    if isinstance(result, str):
        return result
    return pydantic_core.to_json(result).decode()
