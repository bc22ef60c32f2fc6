"""The API's contract as served: a valid OpenAPI 3.1 document of every /api/v1 route, a
browsable page that loads with no network, and requests checked by the same models."""

from __future__ import annotations

import re
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from openapi_spec_validator import OpenAPIV31SpecValidator

from adapters.web.openapi import API_PREFIX, Undeclared
from bots.server import create_app
from tests.e2e.browser import chrome, serving_in_thread
from tests.e2e.conftest import MakeSettings

Client = TestClient[Any, Any]


async def test_the_document_is_valid_openapi_3_1_and_names_every_api_route(
    client: Client,
) -> None:
    response = await client.get("/api/v1/openapi.json")
    assert response.status == 200
    spec = await response.json()
    OpenAPIV31SpecValidator(spec).validate()
    documented = {(method.upper(), path) for path, ops in spec["paths"].items() for method in ops}
    served = {
        (route.method, route.resource.canonical)
        for route in client.app.router.routes()  # type: ignore[union-attr]
        if route.resource is not None and route.method != "HEAD"
        and route.resource.canonical.startswith(API_PREFIX + "/")
        and not re.match(r"^/api/v1/(openapi\.json|docs)", route.resource.canonical)
    }
    assert documented == served
    chat = spec["paths"]["/api/v1/chat/stream"]["post"]["responses"]
    assert "text/event-stream" in chat["200"]["content"]
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            for status, answer in op["responses"].items():
                if int(status) >= 400:  # every error is `{"error": message, ...}`
                    assert answer["content"]["application/json"]["schema"] == {
                        "$ref": "#/components/schemas/ErrorBody"
                    }, (method, path, status)


async def test_an_undeclared_api_route_stops_the_start(make_settings: MakeSettings) -> None:
    app = create_app(make_settings())

    async def secret(request: web.Request) -> web.Response:
        return web.json_response({})

    app.router.add_get("/api/v1/secret", secret)
    with pytest.raises(Undeclared, match="GET /api/v1/secret"):
        async with TestServer(app, host="127.0.0.1"):
            pass


async def test_a_query_that_breaks_its_model_is_a_400_listing_the_problem(client: Client) -> None:
    bad_limit = await client.get("/api/v1/tickets?limit=lots")
    assert bad_limit.status == 400
    body = await bad_limit.json()
    assert body["error"] == "invalid request"
    assert [p.split(":")[0] for p in body["problems"]] == ["limit"]
    bad_flag = await client.get("/api/v1/tickets?all=yes")
    assert bad_flag.status == 400
    assert "must be true or false" in (await bad_flag.json())["problems"][0]
    assert (await client.get("/api/v1/tickets?all=TRUE&include_closed=0&limit=900")).status == 200


class _Assets(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        url = found.get("src") if tag == "script" else found.get("href") if tag == "link" else None
        if url and not url.startswith("data:"):
            self.urls.append(url)


async def test_the_docs_page_and_its_assets_are_served_from_here(client: Client) -> None:
    page = await client.get("/api/v1/docs")
    assert page.status == 200 and page.content_type == "text/html"
    parser = _Assets()
    parser.feed(await page.text())
    assert len(parser.urls) == 3  # the stylesheet, swagger-ui and its set-up
    for url in parser.urls:
        assert "//" not in url, f"{url} would leave this server"
        asset = await client.get(urljoin("/api/v1/docs", url))
        assert asset.status == 200, url
        assert (await asset.read()), url
    init = await client.get("/api/v1/docs/init.js")
    assert '"openapi.json"' in await init.text()
    licence = await client.get("/api/v1/docs/swagger-ui/LICENSE")
    assert "Apache License" in await licence.text()


@pytest.fixture
def docs_url(tmp_path: Path) -> Iterator[str]:
    from bots.settings import load_settings

    settings = load_settings(_env_file=None, data_dir=tmp_path, api_keys=None,
                             openai_api_key=None, openai_base_url=None, bundled_docs=False)
    with serving_in_thread(create_app(settings)) as url:
        yield url + "api/v1/docs"


def test_the_docs_page_shows_every_operation_in_a_browser(docs_url: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    with chrome() as browser:
        browser.get(docs_url)
        WebDriverWait(browser, 30).until(
            lambda d: len(d.find_elements(By.CSS_SELECTOR, ".opblock")) >= 8
        )
        paths = {e.text for e in browser.find_elements(By.CSS_SELECTOR, ".opblock-summary-path")}
        assert {"/api/v1/chat/stream", "/api/v1/tickets/{id}"} <= paths
        assert not browser.get_log("browser"), "the page logged errors"
