"""The REST API's contract: one route table whose pydantic models both check requests and
write the OpenAPI 3.1 document, so a route cannot differ from what the document says.

    api = ApiRoutes()

    @api.post("/tickets", body=NewTicketBody, response=TicketOut, status=201, errors=[404])
    async def create_ticket(request): ...   # reads its body with read_body(request, NewTicketBody)

`ApiRoutes.add_to(app)` registers the handlers under `/api/v1`; `document(app)` builds the
document from every table added, and refuses to if a `/api/v1` route was added to the app
some other way (it would be missing from the document).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from adapters.web.models import ErrorBody

API_PREFIX = "/api/v1"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Method = Literal["GET", "POST", "PATCH", "PUT", "DELETE"]

# What each error status means on this API; every one has the body `ErrorBody`.
ERROR_MEANINGS: Mapping[int, str] = {
    400: "Malformed or invalid request: `error` says what is wrong; a body or query that "
         "does not match its schema also lists each field in `problems`.",
    401: "No valid API key (`Authorization: Bearer <key>`), or, without keys configured, "
         "a client that is not on this machine.",
    403: "The caller is not an administrator (`SWITCHBOARD_ADMINS`), or the request came "
         "from a page on another site.",
    404: "Not found, or not the caller's (the same answer either way).",
    409: "This message is already being answered, or answering it failed: retry later.",
    413: "The body is larger than `SWITCHBOARD_MAX_BODY_BYTES`.",
    429: "Too many requests: wait for `Retry-After` seconds.",
    503: "The database is unavailable or the server is shutting down (with `Retry-After`), "
         "or the answer failed (`retryable`, `reference`).",
}
_ERROR_HEADERS: Mapping[int, dict[str, Any]] = {
    401: {"WWW-Authenticate": {"schema": {"type": "string"}}},
    429: {"Retry-After": {"schema": {"type": "integer"}, "description": "Seconds to wait."}},
    503: {"Retry-After": {"schema": {"type": "integer"}, "description": "Seconds to wait."}},
}
# Routes under the prefix that serve the contract itself rather than the API.
_CONTRACT_PATHS = re.compile(rf"^{API_PREFIX}/(openapi\.json|docs(/.*)?)$")
_PATH_PARAMETER = re.compile(r"{(\w+)}")


@dataclass(frozen=True, kw_only=True)
class Operation:
    """One route as declared: what it reads, what it answers, and how it fails."""

    method: Method
    path: str  # under API_PREFIX, aiohttp style: /tickets/{id}
    handler: Handler
    response: type[BaseModel] | None
    status: int = 200
    body: type[BaseModel] | None = None
    form: type[BaseModel] | None = None  # a multipart/form-data body (uploads)
    query: type[BaseModel] | None = None
    errors: tuple[int, ...] = ()
    public: bool = False  # no API key needed
    # A server-sent event stream instead of JSON: the event payloads by event name.
    events: Mapping[str, type[BaseModel]] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)  # response header → meaning
    tags: tuple[str, ...] = ()

    @property
    def statuses(self) -> list[int]:
        implied = set(self.errors)
        if not self.public:
            implied.add(401)
        if self.body is not None or self.form is not None:
            implied |= {400, 413}
        if self.query is not None:
            implied.add(400)
        return sorted(implied)


API_OPERATIONS = web.AppKey("api_operations", list[Operation])


class ApiRoutes:
    """Declared routes of one module; `add_to` puts them on an app."""

    def __init__(self, *, tag: str) -> None:
        self._tag = tag
        self._operations: list[Operation] = []

    def get(self, path: str, **declared: Any) -> Callable[[Handler], Handler]:
        return self._route("GET", path, declared)

    def post(self, path: str, **declared: Any) -> Callable[[Handler], Handler]:
        return self._route("POST", path, declared)

    def patch(self, path: str, **declared: Any) -> Callable[[Handler], Handler]:
        return self._route("PATCH", path, declared)

    def delete(self, path: str, **declared: Any) -> Callable[[Handler], Handler]:
        return self._route("DELETE", path, declared)

    def _route(
        self, method: Method, path: str, declared: dict[str, Any]
    ) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            declared.setdefault("response", None)
            declared["errors"] = tuple(declared.get("errors", ()))
            self._operations.append(
                Operation(method=method, path=path, handler=handler, tags=(self._tag,),
                          **declared)
            )
            return handler

        return register

    def add_to(self, app: web.Application) -> None:
        if API_OPERATIONS not in app:
            app[API_OPERATIONS] = []
        for op in self._operations:
            app.router.add_route(op.method, API_PREFIX + op.path, op.handler)
            app[API_OPERATIONS].append(op)


class Undeclared(RuntimeError):
    """An `/api/v1` route that is not in any `ApiRoutes` table."""


def document(app: web.Application, *, title: str, version: str) -> dict[str, Any]:
    """The OpenAPI 3.1 document of every declared route."""
    operations = app.get(API_OPERATIONS, [])
    _check_all_declared(app, operations)
    schemas, refs = _schemas(operations)
    paths: dict[str, dict[str, Any]] = {}
    for op in operations:
        paths.setdefault(API_PREFIX + op.path, {})[op.method.lower()] = _operation(op, refs)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": title,
            "version": version,
            "description": "Switchboard's REST API: chat (JSON or server-sent events), "
                           "conversations, support tickets, and adding documents to the "
                           "knowledge base (administrators). Every error is JSON, "
                           '`{"error": message, ...}`.',
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "apiKey": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "A key from SWITCHBOARD_API_KEYS. Without keys configured, "
                                   "clients on this machine are served without one.",
                },
            },
        },
        "security": [{"apiKey": []}],
    }


def _check_all_declared(app: web.Application, operations: Iterable[Operation]) -> None:
    declared = {(op.method, API_PREFIX + op.path) for op in operations}
    for route in app.router.routes():
        path = route.resource.canonical if route.resource is not None else ""
        if route.method == "HEAD" or not path.startswith(API_PREFIX + "/"):
            continue
        if _CONTRACT_PATHS.match(path):
            continue
        if (route.method, path) not in declared:
            raise Undeclared(
                f"{route.method} {path} is not declared in an ApiRoutes table, so the "
                "API document would not show it"
            )


def _schemas(operations: Iterable[Operation]) -> tuple[dict[str, Any], dict[Any, Any]]:
    """Every model's JSON schema under components/schemas, and each (model, mode)'s $ref."""
    wanted: list[tuple[type[BaseModel], Literal["validation", "serialization"]]] = [
        (ErrorBody, "serialization")
    ]
    for op in operations:
        for model in (op.body, op.form):
            if model is not None:
                wanted.append((model, "validation"))
        if op.response is not None:
            wanted.append((op.response, "serialization"))
        wanted.extend((model, "serialization") for model in op.events.values())
    unique = list(dict.fromkeys(wanted))
    refs, top = models_json_schema(unique, ref_template="#/components/schemas/{model}")
    return top.get("$defs", {}), refs


def _operation(op: Operation, refs: Mapping[Any, Any]) -> dict[str, Any]:
    doc = (op.handler.__doc__ or "").strip()
    summary, _, description = doc.partition("\n\n")
    spec: dict[str, Any] = {
        "operationId": op.handler.__name__,
        "summary": " ".join(summary.split()),
        "tags": list(op.tags),
        "responses": {str(op.status): _success(op, refs)},
    }
    if description:
        spec["description"] = " ".join(description.split())
    if op.public:
        spec["security"] = []
    parameters = _path_parameters(op.path) + _query_parameters(op.query)
    if parameters:
        spec["parameters"] = parameters
    if op.body is not None:
        spec["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": refs[(op.body, "validation")]}},
        }
    if op.form is not None:
        spec["requestBody"] = {
            "required": True,
            "content": {"multipart/form-data": {"schema": refs[(op.form, "validation")]}},
        }
    error = {"application/json": {"schema": refs[(ErrorBody, "serialization")]}}
    for status in op.statuses:
        response: dict[str, Any] = {"description": ERROR_MEANINGS[status], "content": error}
        if status in _ERROR_HEADERS:
            response["headers"] = _ERROR_HEADERS[status]
        spec["responses"][str(status)] = response
    return spec


def _success(op: Operation, refs: Mapping[Any, Any]) -> dict[str, Any]:
    headers = {name: {"schema": {"type": "string"}, "description": meaning}
               for name, meaning in op.headers.items()}
    response: dict[str, Any] = {"description": "OK" if op.status == 200 else "Created"}
    if headers:
        response["headers"] = headers
    if op.events:
        names = ", ".join(f"`{name}`" for name in op.events)
        response["description"] = (
            f"Server-sent events ({names}); each event's `data` is one JSON object, "
            "whose schema depends on the event's name."
        )
        response["content"] = {"text/event-stream": {"schema": _event_schema(op, refs)}}
    elif op.response is not None:
        response["content"] = {
            "application/json": {"schema": refs[(op.response, "serialization")]}
        }
    return response


def _event_schema(op: Operation, refs: Mapping[Any, Any]) -> dict[str, Any]:
    """One event of the stream (as OpenAPI 3.1 readers such as Schemathesis take the
    schema of `text/event-stream`): its name, and its `data` as embedded JSON."""
    return {
        "oneOf": [
            {
                "type": "object",
                "required": ["event", "data"],
                "properties": {
                    "event": {"const": name},
                    "data": {
                        "type": "string",
                        "contentMediaType": "application/json",
                        "contentSchema": refs[(model, "serialization")],
                    },
                },
            }
            for name, model in op.events.items()
        ]
    }


def _path_parameters(path: str) -> list[dict[str, Any]]:
    return [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in _PATH_PARAMETER.findall(path)
    ]


def _query_parameters(model: type[BaseModel] | None) -> list[dict[str, Any]]:
    if model is None:
        return []
    properties = model.model_json_schema()["properties"]
    return [
        {
            "name": name,
            "in": "query",
            "required": info.is_required(),
            "schema": {k: v for k, v in properties[name].items() if k != "title"},
            **({"description": info.description} if info.description else {}),
        }
        for name, info in model.model_fields.items()
    ]


def respond(
    body: BaseModel, *, status: int = 200, headers: Mapping[str, str] | None = None
) -> web.Response:
    """A declared response model as JSON. Fields left unset are left out (a user turn has
    no `html`), as the schema allows: only fields without a default are required."""
    return web.json_response(
        body.model_dump(mode="json", exclude_unset=True), status=status, headers=headers
    )
