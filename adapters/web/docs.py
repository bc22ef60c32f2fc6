"""The API's contract as served: `/api/v1/openapi.json` and a browsable page at
`/api/v1/docs` (swagger-ui, vendored under `static/api-docs/`, so it works offline)."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from aiohttp import web

from adapters.web.openapi import API_PREFIX, document

DOCS = Path(__file__).parent / "static" / "api-docs"
TITLE = "Switchboard API"


def add_docs_routes(app: web.Application) -> None:
    """The document is built once, as the app starts: a route missing from the route
    tables stops the start (`openapi.Undeclared`) rather than going undocumented."""
    built: dict[str, Any] = {}

    async def build(app: web.Application) -> None:
        built.update(document(app, title=TITLE, version=_version()))

    async def openapi_json(request: web.Request) -> web.Response:
        return web.json_response(built)

    app.on_startup.insert(0, build)  # before the services start: nothing to undo
    app.router.add_get(f"{API_PREFIX}/openapi.json", openapi_json)
    app.router.add_get(f"{API_PREFIX}/docs", page)
    app.router.add_static(f"{API_PREFIX}/docs", DOCS)


async def page(request: web.Request) -> web.FileResponse:
    return web.FileResponse(DOCS / "index.html", headers={"Cache-Control": "no-cache"})


def _version() -> str:
    try:
        return version("switchboard")
    except PackageNotFoundError:  # run from a checkout that was not installed
        return "0"
