"""API errors as JSON with a clear message; pages keep aiohttp's defaults."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Awaitable, Callable

from aiohttp import web

from core.errors import StorageError

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


_ERRORS: dict[int, type[web.HTTPException]] = {
    400: web.HTTPBadRequest,
    401: web.HTTPUnauthorized,
    403: web.HTTPForbidden,
    404: web.HTTPNotFound,
    409: web.HTTPConflict,
    429: web.HTTPTooManyRequests,
    503: web.HTTPServiceUnavailable,
}


def json_error(
    status: int, message: str, *, headers: dict[str, str] | None = None, **extra: object
) -> web.HTTPException:
    """An HTTP error whose body is `{"error": message, ...}`, for handlers to raise."""
    body = json.dumps({"error": message, **extra})
    return _ERRORS[status](text=body, content_type="application/json", headers=headers)


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException as e:
        if (
            not request.path.startswith("/api/")
            or e.status < 400
            or e.content_type == "application/json"
        ):
            raise
        # aiohttp's own errors (413 body too large, 404 no route, 405) arrive as text.
        message = e.text or e.reason
        return web.json_response({"error": message}, status=e.status, headers=_kept(e))
    except StorageError:
        raise  # 503 with Retry-After, where the server answers for every route
    except Exception:
        if not request.path.startswith("/api/"):
            raise
        reference = uuid.uuid4().hex[:8]
        log.exception("%s %s failed, reference %s", request.method, request.path, reference)
        return web.json_response(
            {"error": "Something went wrong on the server.", "reference": reference}, status=500
        )


def _kept(e: web.HTTPException) -> dict[str, str]:
    return {k: v for k, v in e.headers.items() if k in ("Allow", "WWW-Authenticate", "Retry-After")}
