"""Bad input on the REST API over real HTTP: a 4xx with one log line, never a 500 or a
traceback, and the server keeps answering."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from tests.e2e.conftest import MakeSettings, serving

Client = TestClient[Any, Any]
KEY = "alice-key-0123456789"
ALICE = {"Authorization": f"Bearer {KEY}"}
NESTED = ("[" * 100_000 + "]" * 100_000).encode()


@pytest.fixture
async def api(make_settings: MakeSettings) -> AsyncIterator[Client]:
    async with serving(make_settings(api_keys=f"alice:{KEY}")) as client:
        yield client


def no_traceback(caplog: pytest.LogCaptureFixture) -> None:
    bad = [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    assert not bad, [r.getMessage() for r in bad]


async def still_answers(api: Client) -> None:
    response = await api.get("/api/v1/tickets", headers=ALICE)
    assert response.status == 200


@pytest.mark.parametrize("path", ["/api/v1/chat", "/api/v1/chat/stream", "/api/v1/tickets"])
@pytest.mark.parametrize("body", [
    NESTED,
    b'{"message": ' + b'{"a": ' * 50_000 + b"1" + b"}" * 50_000 + b"}",
], ids=["arrays", "objects-in-a-field"])
async def test_deeply_nested_json_is_refused_with_400(
    api: Client, caplog: pytest.LogCaptureFixture, path: str, body: bytes
) -> None:
    response = await api.post(path, data=body, headers={
        **ALICE, "Content-Type": "application/json"})

    assert response.status == 400
    assert "error" in await response.json()
    await still_answers(api)
    no_traceback(caplog)


LONE_SURROGATES = {
    "escaped": b'{"title": "broken \\ud800 printer"}',
    "trailing escape": b'{"title": "broken \\udc00"}',
    "encoded": '{"title": "broken \ud800"}'.encode("utf-8", "surrogatepass"),
}


@pytest.mark.parametrize("body", LONE_SURROGATES.values(), ids=list(LONE_SURROGATES))
async def test_a_lone_surrogate_in_a_ticket_title_is_refused_with_400(
    api: Client, caplog: pytest.LogCaptureFixture, body: bytes
) -> None:
    response = await api.post("/api/v1/tickets", data=body, headers={
        **ALICE, "Content-Type": "application/json"})

    assert response.status == 400
    listed = await api.get("/api/v1/tickets", headers=ALICE)
    assert (await listed.json())["tickets"] == []
    no_traceback(caplog)


async def test_a_lone_surrogate_in_chat_text_is_refused_with_400(
    api: Client, caplog: pytest.LogCaptureFixture
) -> None:
    response = await api.post("/api/v1/chat", data=b'{"message": "hi \\ud83d"}', headers={
        **ALICE, "Content-Type": "application/json"})

    assert response.status == 400
    await still_answers(api)
    no_traceback(caplog)


async def raw_request(api: Client, head: bytes) -> int:
    """`head` sent as it is (aiohttp's client would not send every header byte): the
    response's status."""
    reader, writer = await asyncio.open_connection(api.host, api.port)
    try:
        writer.write(head)
        await writer.drain()
        status_line = await reader.readline()
    finally:
        writer.close()
        await writer.wait_closed()
    return int(status_line.split()[1])


@pytest.mark.parametrize("token", [
    "Bearer ключ-0123456789".encode(),
    b"Bearer \xff\xfe-0123456789",
    b"Bearer alice-key-0123456789\xc3\xa9",
    b"Bearer sbk_\xff\xfe0123456789",
], ids=["utf-8", "latin-1-bytes", "a-key-and-more", "a-stored-key-prefix"])
async def test_a_non_ascii_bearer_token_is_refused_with_401(
    api: Client, caplog: pytest.LogCaptureFixture, token: bytes
) -> None:
    status = await raw_request(api, b"GET /api/v1/tickets HTTP/1.1\r\nHost: localhost\r\n"
                               b"Authorization: " + token + b"\r\nConnection: close\r\n\r\n")

    assert status == 401
    await still_answers(api)
    no_traceback(caplog)
