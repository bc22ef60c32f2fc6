"""Request bodies and queries: validated by a pydantic model, every problem listed at once."""

from __future__ import annotations

from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from adapters.web.errors import json_error
from core.json_input import parse_json, problems

M = TypeVar("M", bound=BaseModel)


async def read_body(request: web.Request, model: type[M]) -> M:
    """The body as `model`, or a 400 whose `problems` name each field."""
    raw = await request.read()  # 413 beyond the app's client_max_size
    try:
        data = parse_json(raw)
    except ValueError:  # also nested too deep, lone surrogates, invalid UTF-8
        raise json_error(400, "the body must be a JSON object") from None
    return _validated(model, data)


def read_query(request: web.Request, model: type[M]) -> M:
    """The query string as `model` (the last value of a repeated name), or a 400 like
    `read_body`'s. Names the model does not know are ignored, as a cache-buster is."""
    return _validated(model, dict(request.query.items()))


def _validated(model: type[M], data: Any) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as e:
        raise json_error(400, "invalid request", problems=problems(e)) from None
